// The AMHP's finder: units near their area with live availability from the first moment, a search by
// eligibility and location that also says why a unit is not eligible, holds with countdowns, extend and
// release, conveyance, arrival, and s136 clocks with their warnings. Drawn with Preact (view.js): a live
// event patches the rows it changes; the Hold form, what is typed in it and its focus stay.
import { api, connectEvents, liveList, loadCodes, londonTime, problemInWords, readLondonFields, showBanner, whoAmI, withCode } from "./common.js";
import { Confirm, Countdown, DateTimeField, Field, Fragment, html, invalid, Messages, mount, NO_PROBLEM, options, plural, useProblem, useState } from "./view.js";
import { Alternatives, findAlternatives, nothingFree } from "./alternatives.js";
import { ConveyancePanel, ENDED, liveHolds, sameInstant } from "./holds.js";
import { clockClass, detentionName, DetentionsSection, ExtensionForm, liveDetentions } from "./detentions.js";
import { escalations, OpelBadge } from "./escalation.js";

const app = document.getElementById("app");
const codes = await loadCodes();

// The page's data. `holdFor` is the unit whose Hold form is open; `draft` what is typed in it, kept
// here so that it outlives the row (a new search without the unit) until the hold is made or cancelled:
// the person typed for one unit follows to the next Hold clicked.
const state = {
  me: null, areas: new Map(), results: [], ineligible: [], query: null, searchError: "",
  holdFor: null, draft: null, announcement: "", messages: [],
};
let redraw = () => {};

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
      detention_id: kept.detention_id ?? "",
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
  // The hold continues an open detention (its clock): the person is the detention's.
  const continueDetention = (detentionId) => {
    d.detention_id = detentionId;
    const x = detentions.items.find((item) => item.detention_id === d.detention_id);
    if (x) Object.assign(d, { ref: x.person.ref, age: x.person.age, sex: x.person.sex, purpose: "s136" });
    redraw();
  };
  const submit = async (event) => {
    event.preventDefault();
    if (busy) return;
    setProblem(NO_PROBLEM);
    setBusy(true);
    announce("");  // an earlier success must not read as this one's
    const continued = detentions.items.find((x) => x.detention_id === d.detention_id);
    const person = { ref: d.ref.trim(), age: Number(d.age), sex: d.sex, home_area: continued?.person.home_area ?? state.query.home_area };
    if (d.ethnicity) person.ethnicity = d.ethnicity;
    try {
      const response = await api("/api/holds", { method: "POST", headers: { "Idempotency-Key": d.key },
        body: { unit_id: unit.id, purpose: d.purpose, person, ...(continued ? { detention_id: continued.detention_id } : {}) } });
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
  // The person typed is one detained elsewhere, and the hold does not say it continues that detention:
  // without it the hold would start a second clock for the same person.
  const detainedElsewhere = d.detention_id ? null : detentions.items.find((x) => x.person.ref === d.ref.trim());
  return html`<form class="card hold-form" aria-label=${`Hold a place at ${unit.name}`} onSubmit=${submit}>
    <h3>Hold a place at ${unit.name}</h3>
    <div class="grid">
      <${Field} id="h-ref" label="Person reference" error=${f["person.ref"]}>
        <input id="h-ref" required maxlength="40" placeholder="your team's reference, never an NHS number" value=${d.ref}
          onInput=${(event) => { d.ref = event.currentTarget.value; redraw(); }} ...${invalid("h-ref", f["person.ref"])} /><//>
      <${Field} id="h-age" label="Age" error=${f["person.age"]}>
        <input id="h-age" type="number" min="0" max="120" required value=${d.age} onInput=${set("age")} ...${invalid("h-age", f["person.age"])} /><//>
      <${Field} id="h-sex" label="Sex" error=${f["person.sex"]}>
        <select id="h-sex" value=${d.sex} onChange=${set("sex")} ...${invalid("h-sex", f["person.sex"])}>${options(codes.person_sexes)}</select><//>
      <${Field} id="h-eth" label="Ethnic category" error=${f["person.ethnicity"]}>
        <select id="h-eth" value=${d.ethnicity} onChange=${set("ethnicity")}><option value="">not recorded</option>${options(codes.ethnicities, withCode)}</select><//>
      ${detentions.items.length ? html`<${Field} id="h-detention" label="Continues a detention" error=${f.detention_id}>
        <select id="h-detention" value=${d.detention_id} onChange=${(event) => continueDetention(event.currentTarget.value)}
          ...${invalid("h-detention", f.detention_id)}>
          <option value="">none: a new place of safety</option>
          ${detentions.items.map((x) => html`<option key=${x.id} value=${x.detention_id}>${detentionName(x, codes)}</option>`)}</select><//>` : null}
      <${Field} id="h-purpose" label="Purpose" error=${f.purpose}>
        <select id="h-purpose" value=${d.purpose} onChange=${set("purpose")}>${options(codes.purposes)}</select><//>
    </div>
    ${detainedElsewhere ? html`<p class="warning" role="status">Open detention: ${detentionName(detainedElsewhere, codes)}. If
      this is the same person, the hold must continue it, or a second clock starts.
      <button type="button" class="secondary" onClick=${() => continueDetention(detainedElsewhere.detention_id)}>
        Continue that detention</button></p>` : null}
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

const EXTEND_LABELS = { minutes: "Minutes", reason: "Reason" };
const ARRIVE_LABELS = { s136_clock_started_at: "s136 clock started", oap_reason: "Out-of-area reason", arrived_at: "Arrived" };

function HoldCard({ hold }) {
  const [minutes, setMinutes] = useState("30");
  const [why, setWhy] = useState("");
  const [clockStart, setClockStart] = useState("");
  const [arrivedAt, setArrivedAt] = useState("");
  const [oap, setOap] = useState("");
  const [releasing, setReleasing] = useState(false);
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
      <button type="button" class="danger" aria-label=${`Release the hold for ${hold.person.ref} at ${where}`} aria-expanded=${releasing}
        onClick=${() => setReleasing(true)}>Release</button>
    </div>
    ${releasing ? html`<${Confirm} id=${id("release")} question=${`Release the hold for ${hold.person.ref} at ${where}? The place is freed for others.`}
      action="Yes, release the hold" onConfirm=${() => act("release")} onCancel=${() => setReleasing(false)} />` : null}
    <div class="row-actions">
      ${hold.purpose === "s136" ? html`<${DateTimeField} id=${id("a-clock")} label="s136 clock started (if earlier)"
        error=${f.s136_clock_started_at} value=${clockStart} onInput=${setClockStart} />` : null}
      <${DateTimeField} id=${id("a-at")} label="Arrived at (if earlier)" error=${f.arrived_at} value=${arrivedAt} onInput=${setArrivedAt} />
      <${Field} id=${id("a-oap")} label="Out-of-area reason" error=${f.oap_reason}>
        <select id=${id("a-oap")} value=${oap} onChange=${(e) => setOap(e.currentTarget.value)} ...${invalid(id("a-oap"), f.oap_reason)}>
          <option value="">not out of area</option>${options(codes.oap_reasons, withCode)}</select><//>
      <button type="button" aria-label=${`Arrived: ${hold.person.ref} at ${where}`} onClick=${() => {
        const times = readLondonFields({ s136_clock_started_at: clockStart, arrived_at: arrivedAt }, ARRIVE_LABELS);
        if (Object.keys(times.fields).length) return setProblem({ fields: times.fields, general: "" });
        act("arrive", oap ? { ...times.values, oap_reason: oap } : times.values, ARRIVE_LABELS);
      }}>Arrived</button>
    </div>
    ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
    <${ConveyancePanel} hold=${hold} holds=${holds} codes=${codes} />
  </article>`;
}

function ClockRow({ p }) {
  const [extending, setExtending] = useState(false);
  const done = (answer) => {
    setExtending(false);
    placements.set(placements.items.map((q) => (q.id === p.id ? answer : q)));
  };
  return html`<tr data-placement=${p.id}><td>${p.person.ref}</td><td>${londonTime(p.s136_clock_started_at)}</td>
    <td><span class=${clockClass(p.s136_deadline)}><${Countdown} iso=${p.s136_deadline} /></span></td>
    <td>${p.s136_extension_hours ? `+${p.s136_extension_hours} h (${p.s136_extension_authorised_by})`
      : extending ? html`<${ExtensionForm} id=${`px-${p.id}`} path=${`/api/placements/${p.id}/s136-extension`} who=${p.person.ref}
          atPoliceStation=${false} codes=${codes} onDone=${done} onCancel=${() => setExtending(false)} />`
      : html`<button type="button" class="secondary" aria-label=${`Extend the detention of ${p.person.ref}`}
          onClick=${() => setExtending(true)}>Extend</button>`}</td></tr>`;
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

const detentions = liveDetentions({ onChange: () => redraw() });
const holds = liveHolds({
  names: () => new Map([...state.results, ...state.ineligible.map((i) => i.unit)].map((u) => [u.id, u.name])),
  onChange: () => redraw(),
});
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
    </section>
    <${DetentionsSection} codes=${codes} areas=${state.me.areas.map((c) => state.areas.get(c)).filter(Boolean)} detentions=${detentions}
      announce=${announce} />`;
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
    detentions.event(frame);
  }
}

state.me = await whoAmI();
for (const area of await api("/api/areas")) state.areas.set(area.code, area);
const home = state.me.areas[0] || [...state.areas.keys()][0];
state.me.areas = state.me.areas.length ? state.me.areas : [...state.areas.keys()];
state.query = { kind: "", age: null, sex: "", home_area: home, near_area: home, coords: "", available_only: false };
redraw = mount(app, App);
const resync = async () => { await search(); await Promise.all([holds.refresh(), placements.refresh(), detentions.refresh()]); };
window.addEventListener("capacity:online", () => { resync().catch(() => {}); });
connectEvents({ onEvent, resync });
