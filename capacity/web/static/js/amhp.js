// The AMHP's finder: units near their area with live availability from the first moment, a search by
// eligibility and location that also says why a unit is not eligible, holds with countdowns, extend and
// release, conveyance, arrival, and s136 clocks with their warnings. Drawn with Preact (view.js): a live
// event patches the rows it changes; the Hold form, what is typed in it and its focus stay.
import { api, connectEvents, liveList, loadCodes, londonTime, problemInWords, serverNow, showBanner, whoAmI } from "./common.js";
import { Countdown, Field, Fragment, html, invalid, Messages, mount, NO_PROBLEM, plural, useProblem, useState } from "./view.js";
import { Alternatives, findAlternatives, nothingFree } from "./alternatives.js";
import { escalations, OpelBadge } from "./escalation.js";

const TIMES = [["requested_at", "Requested"], ["dispatched_at", "Dispatched"], ["at_scene_at", "At scene"],
  ["departed_at", "Departed"], ["arrived_at", "Arrived"], ["eta", "ETA"]];
const app = document.getElementById("app");
const codes = await loadCodes();
const withCode = (c) => `${c.code} ${c.label}`;
const options = (list, text = (c) => c.label) => list.map((c) => html`<option key=${c.code} value=${c.code}>${text(c)}</option>`);

// The page's data. `holdFor` is the unit whose Hold form is open; `draft` what is typed in it, kept
// here so that it outlives the row (a new search without the unit) until the hold is made or cancelled:
// the person typed for one unit follows to the next Hold clicked.
const state = {
  me: null, areas: new Map(), results: [], ineligible: [], query: null, searchError: "",
  holdFor: null, draft: null, announcement: "", messages: [],
};
let redraw = () => {};

// datetime-local inputs speak the browser's local time; the API speaks UTC ISO 8601.
const toLocalInput = (iso) => {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};
const fromLocalInput = (value) => (value ? new Date(value).toISOString() : undefined);

// --- what happened, in words --------------------------------------------------------------------------

const unitName = (id) => [...state.results, ...state.ineligible.map((i) => i.unit)].find((u) => u.id === id)?.name;
const holdName = (hold) => `${hold.person.ref} at ${hold.unit_name || unitName(hold.unit_id) || "the unit"}`;

// A message about a hold replaces the one before it (an expiry warning, then the expiry).
function tell(key, text, tone = "") {
  state.messages = [{ key, text, tone }, ...state.messages.filter((m) => m.key !== key)];
  redraw();
}
const dismiss = (key) => {
  state.messages = state.messages.filter((m) => m.key !== key);
  redraw();
};
function announce(text) {
  state.announcement = text;
  redraw();
}

const ENDINGS = {
  "hold.declined": (hold, reason) => `The hold for ${holdName(hold)} was declined${reason ? `: ${reason}` : ""}.`,
  "hold.expired": (hold) => `The hold for ${holdName(hold)} has expired; the place is no longer held.`,
  "hold.arrived": (hold) => `${hold.person.ref} has arrived at ${hold.unit_name || unitName(hold.unit_id) || "the unit"}.`,
  "hold.released": (hold) => `The hold for ${holdName(hold)} was released.`,
};
const TONES = { "hold.declined": "bad", "hold.expired": "bad", "hold.arrived": "ok", "hold.released": "" };

function holdEnded(type, hold) {
  tell(`hold:${hold.id}`, ENDINGS[type](hold), TONES[type]);
  if (type !== "hold.declined") return;
  // The event does not say why; the hold does (one audited read, for this AMHP's own hold).
  api(`/api/holds/${hold.id}`).then((ended) => {
    if (ended.decline_reason) tell(`hold:${hold.id}`, ENDINGS[type](hold, codes.label("decline_reasons", ended.decline_reason)), "bad");
  }).catch(() => {});
}

function expiring(hold, minutesLeft) {
  const minutes = Math.round(minutesLeft);
  const when = minutes < 1 ? "in less than a minute" : `in ${plural(minutes, "minute")}`;
  tell(`hold:${hold.id}`, `The hold for ${holdName(hold)} expires ${when} (at ${londonTime(hold.expires_at)}).`, "warn");
}

// --- search ---------------------------------------------------------------------------------------------

function nearParam() {
  const q = state.query;
  if (q.near_area === "coords" && q.coords) return q.coords;
  const area = state.areas.get(q.near_area === "coords" ? q.home_area : q.near_area);
  return `${area.lat},${area.lon}`;
}

async function search() {
  const q = state.query;
  const base = new URLSearchParams({ near: nearParam(), limit: "50" });
  if (q.kind) base.append("kind", q.kind);
  const eligible = new URLSearchParams(base);
  eligible.set("home_area", q.home_area);
  if (q.age !== null) eligible.set("age", q.age);
  if (q.sex) eligible.set("sex", q.sex);
  try {
    const [found, all] = await Promise.all([api(`/api/units?${eligible}`), api(`/api/units?${base}`)]);
    const ok = new Set(found.map((u) => u.id));
    state.results = q.available_only ? found.filter((u) => u.available > 0) : found;
    state.alternatives = nothingFree(found) ? await findAlternatives(q) : null; // what is open instead of a bed
    state.ineligible = all.filter((u) => !ok.has(u.id)).map((u) => ({ unit: u, why: whyNot(u) }));
    state.searchError = "";
  } catch (e) {
    const { fields, general } = problemInWords(e, { labels: { near: "Coordinates", age: "Age" } });
    state.searchError = e.network ? "" : [...Object.values(fields), general].filter(Boolean).join(" ");
  }
  redraw();
}

function whyNot(unit) {
  const q = state.query;
  const reasons = [];
  if (q.age !== null && (q.age < unit.min_age || (unit.max_age !== null && q.age > unit.max_age))) {
    reasons.push(`takes ages ${unit.min_age}${unit.max_age === null ? "+" : `–${unit.max_age}`}`);
  }
  if (q.sex && codes.has("person_sexes", unit.sex) && unit.sex !== q.sex) reasons.push(codes.label("unit_sexes", unit.sex));
  if (!reasons.length) reasons.push(`does not take people from ${state.areas.get(q.home_area)?.name || q.home_area}`);
  return reasons.join("; ");
}

function SearchForm() {
  const [q, setQ] = useState(() => ({ ...state.query, age: state.query.age ?? "" }));
  const set = (name) => (event) => setQ({ ...q, [name]: event.currentTarget.type === "checkbox" ? event.currentTarget.checked : event.currentTarget.value });
  const submit = async (event) => {
    event.preventDefault();
    state.query = { ...q, age: q.age === "" ? null : Number(q.age), coords: q.coords.trim() };
    await search();
  };
  return html`<form class="card" id="search-form" role="search" aria-label="Find a place" onSubmit=${submit}>
    <h2>Find a place</h2>
    <div class="grid">
      <${Field} id="s-kind" label="Kind"><select id="s-kind" name="kind" value=${q.kind} onChange=${set("kind")}>
        <option value="">any kind</option>${options(codes.kinds)}</select><//>
      <${Field} id="s-age" label="Age"><input id="s-age" name="age" type="number" min="0" max="120" value=${q.age} onInput=${set("age")} /><//>
      <${Field} id="s-sex" label="Sex"><select id="s-sex" name="sex" value=${q.sex} onChange=${set("sex")}>
        <option value="">not given</option>${options(codes.person_sexes.filter((s) => codes.has("unit_sexes", s.code)))}</select><//>
      <${Field} id="s-home" label="Home area"><select id="s-home" name="home_area" value=${q.home_area} onChange=${set("home_area")}>
        ${state.me.areas.map((c) => html`<option key=${c} value=${c}>${state.areas.get(c)?.name || c}</option>`)}</select><//>
      <${Field} id="s-near" label="Near"><select id="s-near" name="near_area" value=${q.near_area} onChange=${set("near_area")}>
        ${[...state.areas.values()].map((a) => html`<option key=${a.code} value=${a.code}>centre of ${a.name}</option>`)}
        <option value="coords">coordinates…</option></select><//>
      <${Field} id="s-coords" label="Coordinates (lat,lon)"><input id="s-coords" name="coords" placeholder="51.45,-2.59" value=${q.coords} onInput=${set("coords")} /><//>
      <div><label for="s-available"><input id="s-available" name="available_only" type="checkbox" style="width:auto"
        checked=${q.available_only} onChange=${set("available_only")} /> Only with a free place</label></div>
      <div><button type="submit">Search</button></div>
    </div>
    ${state.searchError ? html`<p class="error" role="alert">${state.searchError}</p>` : null}
  </form>`;
}

// --- the Hold form ---------------------------------------------------------------------------------------

const HOLD_LABELS = { "person.ref": "Person reference", "person.age": "Age", "person.sex": "Sex", "person.ethnicity": "Ethnic category",
  purpose: "Purpose" };
const HOLD_HINTS = { "person.ref": "Person reference: use letters, digits and / _ . - only (no spaces), starting with a letter or digit." };

function openHoldForm(unit) {
  if (state.holdFor !== unit.id) {
    const q = state.query;
    const kept = state.draft || {};  // the person typed for one unit follows to another
    state.draft = {
      ref: kept.ref ?? "", age: kept.age ?? (q.age ?? ""), sex: kept.sex ?? (q.sex || codes.person_sexes[0].code),
      ethnicity: kept.ethnicity ?? "", purpose: codes.find("kinds", unit.kind)?.purpose ?? codes.purposes[0].code,
      key: crypto.randomUUID(),  // a retried click never makes a second hold
    };
    state.holdFor = unit.id;
  }
  redraw();
}

function closeHoldForm() {
  state.holdFor = null;
  state.draft = null;
  redraw();
}

function HoldForm({ unit }) {
  const d = state.draft;
  const [problem, setProblem] = useProblem();
  const [busy, setBusy] = useState(false);
  const set = (name) => (event) => { d[name] = event.currentTarget.value; };
  const submit = async (event) => {
    event.preventDefault();
    if (busy) return;
    setProblem(NO_PROBLEM);
    setBusy(true);
    announce("");  // an earlier success must not read as this one's
    const person = { ref: d.ref.trim(), age: Number(d.age), sex: d.sex, home_area: state.query.home_area };
    if (d.ethnicity) person.ethnicity = d.ethnicity;
    try {
      const response = await api("/api/holds", { method: "POST", headers: { "Idempotency-Key": d.key },
        body: { unit_id: unit.id, purpose: d.purpose, person } });
      closeHoldForm();
      showBanner("");
      announce(`Held a place for ${response.person.ref} at ${unit.name} until ${londonTime(response.expires_at)}.`);
      holds.set([{ ...response, unit_name: unit.name }, ...holds.items.filter((h) => h.id !== response.id)]);
    } catch (e) {
      if (!e.network) d.key = crypto.randomUUID();  // the server answered: no hold was made with this key
      setProblem(problemInWords(e, { labels: HOLD_LABELS, hints: HOLD_HINTS, conflict: "No place is free there any more. Search again." }));
    } finally {
      setBusy(false);
    }
  };
  const f = problem.fields;
  return html`<form class="card hold-form" aria-label=${`Hold a place at ${unit.name}`} onSubmit=${submit}>
    <h3>Hold a place at ${unit.name}</h3>
    <div class="grid">
      <${Field} id="h-ref" label="Person reference" error=${f["person.ref"]}>
        <input id="h-ref" required maxlength="40" placeholder="your team's reference, never an NHS number" value=${d.ref}
          onInput=${set("ref")} ...${invalid("h-ref", f["person.ref"])} /><//>
      <${Field} id="h-age" label="Age" error=${f["person.age"]}>
        <input id="h-age" type="number" min="0" max="120" required value=${d.age} onInput=${set("age")} ...${invalid("h-age", f["person.age"])} /><//>
      <${Field} id="h-sex" label="Sex" error=${f["person.sex"]}>
        <select id="h-sex" value=${d.sex} onChange=${set("sex")} ...${invalid("h-sex", f["person.sex"])}>${options(codes.person_sexes)}</select><//>
      <${Field} id="h-eth" label="Ethnic category" error=${f["person.ethnicity"]}>
        <select id="h-eth" value=${d.ethnicity} onChange=${set("ethnicity")}><option value="">not recorded</option>${options(codes.ethnicities, withCode)}</select><//>
      <${Field} id="h-purpose" label="Purpose" error=${f.purpose}>
        <select id="h-purpose" value=${d.purpose} onChange=${set("purpose")}>${options(codes.purposes)}</select><//>
    </div>
    ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
    <div class="row-actions">
      <button type="submit" aria-disabled=${busy ? "true" : undefined}>Place hold</button>
      <button type="button" class="secondary" onClick=${closeHoldForm}>Cancel</button>
    </div>
  </form>`;
}

function ResultRow({ unit }) {
  return html`<tr data-unit=${unit.id}>
    <td><strong>${unit.name}</strong><div class="muted">${codes.label("kinds", unit.kind)}${unit.out_of_area ? " · out of area" : ""}</div>
      <${OpelBadge} unit=${unit} /></td>
    <td>${unit.distance_km !== undefined ? `${unit.distance_km} km` : "—"}</td>
    <td>${unit.status === "closed" ? html`<span class="badge bad">closed</span>`
      : html`<span class=${`badge ${unit.available > 0 ? "ok" : "bad"}`} data-field="available">${unit.available} of ${unit.open_places} free</span>`}</td>
    <td class="optional"><span class=${unit.stale ? "stale" : ""}>${unit.stale ? "⚠ stale, " : ""}${londonTime(unit.last_confirmed_at)}</span></td>
    <td>${unit.available > 0 && state.holdFor !== unit.id
      ? html`<button type="button" aria-label=${`Hold a place at ${unit.name}`} onClick=${() => openHoldForm(unit)}>Hold</button>` : null}</td>
  </tr>`;
}

// --- holds ---------------------------------------------------------------------------------------------

const CONVEYANCE_LABELS = { mode: "Mode", police_vehicle_reason: "Police vehicle reason", police_vehicle_note: "Police vehicle note",
  ...Object.fromEntries(TIMES) };

function ConveyancePanel({ hold }) {
  const c = hold.conveyance || {};
  // What is typed, over what the hold has: a live update of the hold does not undo it.
  const [draft, setDraft] = useState({});
  const [problem, setProblem] = useProblem();
  const shown = {
    mode: c.mode || codes.conveyance_modes[0].code, police_vehicle_reason: c.police_vehicle_reason || "",
    police_vehicle_note: c.police_vehicle_note || "", ...Object.fromEntries(TIMES.map(([name]) => [name, toLocalInput(c[name])])), ...draft,
  };
  const set = (name) => (event) => setDraft({ ...draft, [name]: event.currentTarget.value });
  const submit = async (event) => {
    event.preventDefault();
    setProblem(NO_PROBLEM);
    const body = { mode: shown.mode };
    if (shown.police_vehicle_reason) body.police_vehicle_reason = shown.police_vehicle_reason;
    if (shown.police_vehicle_note.trim()) body.police_vehicle_note = shown.police_vehicle_note.trim();
    for (const [name] of TIMES) if (shown[name]) body[name] = fromLocalInput(shown[name]);
    ownConveyance.add(hold.id);  // its conveyance.updated event is then this answer's echo
    try {
      const saved = await api(`/api/holds/${hold.id}/conveyance`, { method: "PUT", body });
      setDraft({});
      holds.set(holds.items.map((h) => (h.id === hold.id ? { ...h, conveyance: saved } : h)));
    } catch (e) {
      ownConveyance.delete(hold.id);
      setProblem(problemInWords(e, { labels: CONVEYANCE_LABELS }));
    }
  };
  const f = problem.fields;
  const id = (name) => `c-${name}-${hold.id}`;
  return html`<form class="card" aria-label=${`Conveyance for ${hold.person.ref}`} onSubmit=${submit}><h4>Conveyance</h4>
    <div class="grid">
      <${Field} id=${id("mode")} label="Mode" error=${f.mode}>
        <select id=${id("mode")} value=${shown.mode} onChange=${set("mode")}>${options(codes.conveyance_modes)}</select><//>
      <${Field} id=${id("reason")} label="Police vehicle reason" error=${f.police_vehicle_reason}>
        <select id=${id("reason")} value=${shown.police_vehicle_reason} onChange=${set("police_vehicle_reason")}
          ...${invalid(id("reason"), f.police_vehicle_reason)}>
          <option value="">not a police vehicle</option>${options(codes.police_vehicle_reasons)}</select><//>
      <${Field} id=${id("note")} label="Police vehicle note" error=${f.police_vehicle_note}>
        <input id=${id("note")} placeholder="note (optional)" maxlength="280" value=${shown.police_vehicle_note} onInput=${set("police_vehicle_note")} /><//>
      ${TIMES.map(([name, text]) => html`<${Field} key=${name} id=${id(name)} label=${text} error=${f[name]}>
        <input id=${id(name)} type="datetime-local" value=${shown[name]} onInput=${set(name)} ...${invalid(id(name), f[name])} /><//>`)}
    </div>
    ${c.ambulance_response_minutes != null ? html`<p class=${c.within_standard === false ? "warning" : "muted"}>
      Ambulance response ${c.ambulance_response_minutes} min (standard ${c.ambulance_standard_minutes})</p>` : null}
    ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
    <button type="submit" aria-label=${`Save conveyance for ${hold.person.ref}`}>Save conveyance</button>
  </form>`;
}

const EXTEND_LABELS = { minutes: "Minutes", reason: "Reason" };
const ARRIVE_LABELS = { s136_clock_started_at: "s136 clock started", oap_reason: "Out-of-area reason", arrived_at: "Arrived" };

function HoldCard({ hold }) {
  const [minutes, setMinutes] = useState("30");
  const [why, setWhy] = useState("");
  const [clockStart, setClockStart] = useState("");
  const [oap, setOap] = useState("");
  const [problem, setProblem] = useProblem();
  // The answer says what became of the hold (extend, release) or the placement it became (arrive).
  const act = async (path, body, labels = {}) => {
    setProblem(NO_PROBLEM);
    try {
      const answer = await api(`/api/holds/${hold.id}/${path}`, { method: "POST", body });
      if (path === "extend") {
        holds.set(holds.items.map((h) => (h.id === hold.id ? { ...h, ...answer, unit_name: h.unit_name, partial: false } : h)));
        setWhy("");
        return;
      }
      holds.set(holds.items.filter((h) => h.id !== hold.id));
      holdEnded(path === "arrive" ? "hold.arrived" : "hold.released", hold);
      if (path === "arrive" && answer.s136_deadline) {
        placements.set([...placements.items.filter((p) => p.id !== answer.id), answer]);
      }
    } catch (e) { setProblem(problemInWords(e, { labels, conflict: "This hold is no longer held: someone else ended it." })); }
  };
  const f = problem.fields;
  const id = (name) => `${name}-${hold.id}`;
  const where = hold.unit_name || unitName(hold.unit_id) || "unit";
  return html`<article class="card" data-hold=${hold.id}>
    <h3>${hold.person.ref} → ${where}</h3>
    <p><strong><${Countdown} iso=${hold.expires_at} /></strong> left · until ${londonTime(hold.expires_at)} · extended ${hold.extensions}×</p>
    <div class="row-actions">
      <${Field} id=${id("x-min")} label="Minutes" error=${f.minutes}>
        <input id=${id("x-min")} type="number" min="1" max="240" style="width:5rem" value=${minutes}
          onInput=${(e) => setMinutes(e.currentTarget.value)} ...${invalid(id("x-min"), f.minutes)} /><//>
      <${Field} id=${id("x-why")} label="Reason" error=${f.reason}>
        <input id=${id("x-why")} placeholder="reason, e.g. ambulance delayed" value=${why} onInput=${(e) => setWhy(e.currentTarget.value)}
          ...${invalid(id("x-why"), f.reason)} /><//>
      <button type="button" aria-label=${`Extend the hold for ${hold.person.ref} at ${where}`}
        onClick=${() => act("extend", { minutes: Number(minutes), reason: why }, EXTEND_LABELS)}>Extend</button>
      <button type="button" class="danger" aria-label=${`Release the hold for ${hold.person.ref} at ${where}`} onClick=${() => act("release")}>Release</button>
    </div>
    <div class="row-actions">
      ${hold.purpose === "s136" ? html`<${Field} id=${id("a-clock")} label="s136 clock started (if earlier)" error=${f.s136_clock_started_at}>
        <input id=${id("a-clock")} type="datetime-local" value=${clockStart} onInput=${(e) => setClockStart(e.currentTarget.value)}
          ...${invalid(id("a-clock"), f.s136_clock_started_at)} /><//>` : null}
      <${Field} id=${id("a-oap")} label="Out-of-area reason" error=${f.oap_reason}>
        <select id=${id("a-oap")} value=${oap} onChange=${(e) => setOap(e.currentTarget.value)} ...${invalid(id("a-oap"), f.oap_reason)}>
          <option value="">not out of area</option>${options(codes.oap_reasons, withCode)}</select><//>
      <button type="button" aria-label=${`Arrived: ${hold.person.ref} at ${where}`} onClick=${() => {
        const body = {};
        if (clockStart) body.s136_clock_started_at = fromLocalInput(clockStart);
        if (oap) body.oap_reason = oap;
        act("arrive", body, ARRIVE_LABELS);
      }}>Arrived</button>
    </div>
    ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
    <${ConveyancePanel} hold=${hold} />
  </article>`;
}

function ClockRow({ p }) {
  const ms = new Date(p.s136_deadline).getTime() - serverNow();
  const cls = ms < 30 * 60000 ? "badge bad" : ms < 2 * 3600000 ? "badge" : "badge ok";
  return html`<tr data-placement=${p.id}><td>${p.person.ref}</td><td>${londonTime(p.s136_clock_started_at)}</td>
    <td><span class=${cls}><${Countdown} iso=${p.s136_deadline} /></span></td>
    <td>${p.s136_extension_hours ? `+${p.s136_extension_hours} h (${p.s136_extension_authorised_by})` : "—"}</td></tr>`;
}

async function readHolds() {
  const names = new Map([...state.results, ...state.ineligible.map((i) => i.unit)].map((u) => [u.id, u.name]));
  for (const h of holds.items) if (h.unit_name) names.set(h.unit_id, h.unit_name);
  const found = (await api("/api/holds?status=held")).map((h) => ({ ...h, unit_name: names.get(h.unit_id) }));
  for (const hold of found.filter((h) => !h.unit_name)) hold.unit_name = (await api(`/api/units/${hold.unit_id}`)).name;
  return found;
}

const ENDED = new Set(["hold.released", "hold.declined", "hold.expired", "hold.arrived"]);
const sameInstant = (a, b) => (a ? new Date(a).getTime() : null) === (b ? new Date(b).getTime() : null);
const ownConveyance = new Set();  // holds whose conveyance this page is saving

// One hold event or conveyance update applied to the live holds. A hold the page has not seen is shown
// from the event and re-read (coalesced) for what the event lacks: its conveyance and extensions.
function applyHold(items, frame) {
  const d = frame.data;
  const known = items.find((h) => h.id === d.hold_id);
  if (ENDED.has(frame.type)) return known ? items.filter((h) => h.id !== d.hold_id) : items;
  const patch = (changes) => items.map((h) => (h.id === d.hold_id ? { ...h, ...changes } : h));
  if (frame.type === "conveyance.updated") {
    if (!known) return items;
    const fields = { mode: d.mode, eta: d.eta, requested_at: d.requested_at, at_scene_at: d.at_scene_at, arrived_at: d.arrived_at,
      ambulance_response_minutes: d.ambulance_response_minutes, ambulance_standard_minutes: d.ambulance_standard_minutes };
    // Someone else's update: the event lacks the other times and the police vehicle reason.
    const echo = ownConveyance.delete(d.hold_id);
    return patch({ expires_at: d.hold_expires_at, conveyance: { ...known.conveyance, ...fields }, partial: known.partial || !echo });
  }
  if (d.status !== "held") return items;
  if (!known) {
    return [{ id: d.hold_id, unit_id: d.unit_id, status: d.status, purpose: d.purpose, expires_at: d.expires_at, person: d.person,
      risk_flags: [], extensions: 0, conveyance: null, unit_name: unitName(d.unit_id), partial: true }, ...items];
  }
  // An extension by hand counts in `extensions`, which the event lacks; one for the conveyance ETA does not.
  const counted = frame.type === "hold.extended" && d.reason !== "conveyance eta" && !sameInstant(known.expires_at, d.expires_at);
  return patch({ expires_at: d.expires_at, partial: known.partial || counted });
}

// Placement and s136 events applied to the s136 clocks: the events lack when the clock started and any
// extension's hours and authoriser, so a new or extended clock is re-read (coalesced).
function applyPlacement(items, frame) {
  const d = frame.data;
  const known = items.find((p) => p.id === d.placement_id);
  if (frame.type === "placement.discharged" || d.ended_at || !d.s136_deadline) return items.filter((p) => p.id !== d.placement_id);
  if (!known) {
    return [...items, { id: d.placement_id, unit_id: d.unit_id, hold_id: d.hold_id, person: d.person, legal_basis: d.legal_basis,
      started_at: d.started_at, s136_deadline: d.s136_deadline, s136_clock_started_at: null, partial: true }];
  }
  const extended = frame.type === "s136.extended" && !sameInstant(known.s136_deadline, d.s136_deadline);
  return items.map((p) => (p.id === d.placement_id ? { ...p, s136_deadline: d.s136_deadline, partial: p.partial || extended } : p));
}

const holds = liveList({ read: readHolds, apply: applyHold, onChange: () => redraw() });
const placements = liveList({
  read: async () => (await api("/api/placements?active=true")).filter((p) => p.s136_deadline),
  apply: applyPlacement,
  onChange: () => redraw(),
});

function Table({ headers, children }) {
  return html`<table><thead><tr>${headers.map((h, i) => html`<th key=${i} scope="col">${h}</th>`)}</tr></thead><tbody>${children}</tbody></table>`;
}

function App() {
  return html`
    <p id="announce" class="announce" role="status" aria-live="polite">${state.announcement}</p>
    <${Messages} items=${state.messages} dismiss=${dismiss} label="What happened to your holds" />
    <${SearchForm} />
    <section class="card" aria-labelledby="results-h"><h2 id="results-h">Places, nearest first</h2>
      ${state.results.length ? html`<${Table} headers=${["Unit", "Distance", "Availability", "Last confirmed", ""]}>
          ${state.results.map((unit) => html`<${Fragment} key=${unit.id}>
            <${ResultRow} unit=${unit} />
            ${state.holdFor === unit.id ? html`<tr class="hold-form-row"><td colspan="5"><${HoldForm} unit=${unit} /></td></tr>` : null}
          <//>`)}<//>`
        : html`<p class="empty">No eligible unit matches this search. Try another kind or area.</p>`}
      ${state.alternatives ? html`<${Alternatives} items=${state.alternatives} codes=${codes} />` : null}
      ${state.ineligible.length ? html`<details><summary>${state.ineligible.length} not eligible for this person</summary>
        <ul>${state.ineligible.map(({ unit, why }) => html`<li key=${unit.id}>${unit.name}: ${why}</li>`)}</ul></details>` : null}
    </section>
    <section class="card" aria-labelledby="holds-h"><h2 id="holds-h">Your holds</h2>
      ${holds.items.length ? holds.items.map((hold) => html`<${HoldCard} key=${hold.id} hold=${hold} />`) : html`<p class="empty">No live holds.</p>`}
    </section>
    <section class="card" aria-labelledby="clocks-h"><h2 id="clocks-h">Section 136 clocks</h2>
      ${placements.items.length ? html`<${Table} headers=${["Person", "Clock started", "Time left", "Extension"]}>
          ${placements.items.map((p) => html`<${ClockRow} key=${p.id} p=${p} />`)}<//>`
        : html`<p class="empty">No one is detained under s136 in your areas.</p>`}
    </section>`;
}

function onEvent(frame) {
  const d = frame.data;
  escalations.event(frame);
  if (frame.type === "unit.availability") {
    const patch = (u) => (u.id === d.unit_id ? { ...u, ...d } : u);
    state.results = state.results.map(patch);
    redraw();
  } else if (frame.type.startsWith("hold.") || frame.type === "conveyance.updated") {
    const known = holds.items.find((h) => h.id === d.hold_id);
    if (known && frame.type === "hold.expiring") expiring({ ...known, expires_at: d.expires_at }, d.minutes_left);
    if (known && ENDED.has(frame.type)) holdEnded(frame.type, known);
    holds.event(frame);
  } else if (frame.type.startsWith("placement.") || frame.type.startsWith("s136.")) {
    if (frame.type === "s136.warning") showBanner(`s136 deadline for ${d.person.ref} in ${plural(Math.round(d.minutes_left), "minute")}`);
    if (frame.type === "s136.breach") showBanner(`s136 deadline passed for ${d.person.ref}`);
    placements.event(frame);
  }
}

state.me = await whoAmI();
for (const area of await api("/api/areas")) state.areas.set(area.code, area);
const home = state.me.areas[0] || [...state.areas.keys()][0];
state.me.areas = state.me.areas.length ? state.me.areas : [...state.areas.keys()];
state.query = { kind: "", age: null, sex: "", home_area: home, near_area: home, coords: "", available_only: false };
redraw = mount(app, App);
const resync = async () => { await search(); await Promise.all([holds.refresh(), placements.refresh()]); };
window.addEventListener("capacity:online", () => { resync().catch(() => {}); });
connectEvents({ onEvent, resync });
