// The bed manager's live board: their units' figures, holds on them with countdowns, arrivals and
// discharges. Everything re-reads from the API after a reconnect; events patch the board in between,
// from their own data: only a new hold, whose risk flags the event lacks, is re-read (coalesced). Drawn
// with Preact (view.js): a figure being typed, its focus and a pending Save survive every live update.
import { api, connectEvents, liveList, loadCodes, londonTime, problemInWords, readLondonFields, showBanner, whoAmI } from "./common.js";
import { Confirm, Countdown, DateTimeField, Field, html, invalid, mount, NO_PROBLEM, options, plural, useEffect, useProblem, useState } from "./view.js";
import { EscalationPanel, escalations } from "./escalation.js";

const codes = await loadCodes();
const app = document.getElementById("app");
// `fresh`: holds that arrived while the board was open (id -> when), highlighted for NEW_MS.
const state = { me: null, units: new Map(), areas: [], announcement: "", fresh: new Map() };
const NEW_MS = 2 * 60 * 1000;
let redraw = () => {};

function mine(unit) {
  return state.me.role === "admin" || unit.provider_id === state.me.provider_id;
}

const ENDED = new Set(["hold.released", "hold.declined", "hold.expired", "hold.arrived"]);

// A hold event or conveyance update applied to the holds on the board. A new hold is drawn from the event
// at once and marked partial: the event lacks its risk flags, so it is re-read (coalesced).
function applyHold(items, frame) {
  const d = frame.data;
  if (!state.units.has(d.unit_id)) return items;
  const known = items.some((h) => h.id === d.hold_id);
  if (ENDED.has(frame.type)) return known ? items.filter((h) => h.id !== d.hold_id) : items;
  if (frame.type === "conveyance.updated") {
    return items.map((h) => (h.id === d.hold_id ? { ...h, expires_at: d.hold_expires_at, conveyance: { ...h.conveyance, eta: d.eta } } : h));
  }
  if (d.status !== "held") return items;
  if (!known) {
    return [{ id: d.hold_id, unit_id: d.unit_id, status: d.status, purpose: d.purpose, expires_at: d.expires_at, person: d.person,
      risk_flags: [], conveyance: null, partial: true }, ...items];
  }
  return items.map((h) => (h.id === d.hold_id ? { ...h, expires_at: d.expires_at } : h));
}

// Placement events carry all a placement row shows.
function applyPlacement(items, frame) {
  const d = frame.data;
  if (!state.units.has(d.unit_id)) return items;
  if (frame.type === "placement.discharged" || d.ended_at) return items.filter((p) => p.id !== d.placement_id);
  if (!items.some((p) => p.id === d.placement_id)) {
    return [...items, { id: d.placement_id, unit_id: d.unit_id, hold_id: d.hold_id, person: d.person, legal_basis: d.legal_basis,
      started_at: d.started_at, ended_at: null, s136_deadline: d.s136_deadline }];
  }
  return items.map((p) => (p.id === d.placement_id ? { ...p, s136_deadline: d.s136_deadline } : p));
}

const holds = liveList({
  read: async () => (await api("/api/holds?status=held")).filter((h) => state.units.has(h.unit_id)),
  apply: applyHold,
  onChange: () => redraw(),
});
const placements = liveList({
  read: async () => (await api("/api/placements?active=true")).filter((p) => state.units.has(p.unit_id)),
  apply: applyPlacement,
  onChange: () => redraw(),
});

async function loadAll() {
  const units = await api("/api/units");
  state.units = new Map(units.filter(mine).map((u) => [u.id, u]));
  redraw();
  await Promise.all([holds.refresh(), placements.refresh(), escalations.refresh()]);
}

// Kept in state, so a redraw for a live event does not wipe what the user was just told.
function announce(text) {
  state.announcement = text;
  redraw();
}

const AVAILABILITY_LABELS = { open_places: "Open places", closed_reason: "Reason for closing", status: "Status", note: "Note" };

// The figures declared; throws what the API answered, for the row to show beside its field.
async function declare(unit, changes, message) {
  const body = { open_places: unit.open_places, status: unit.status, closed_reason: unit.closed_reason, ...changes };
  if (body.status === "open") delete body.closed_reason;
  const updated = await api(`/api/units/${unit.id}/availability`, { method: "PUT", body });
  state.units.set(unit.id, { ...state.units.get(unit.id), ...updated });
  showBanner("");
  announce(message || `${unit.name}: saved`);
}

function UnitRow({ unit }) {
  // What the bed manager types stays until it is saved: a live update changes the figure only when
  // nothing is being typed over it.
  const [places, setPlaces] = useState(null);
  const [reason, setReason] = useState(null);
  const [problem, setProblem] = useProblem();
  const shownPlaces = places ?? String(unit.open_places);
  const shownReason = reason ?? "";  // why it closes is chosen each time, never assumed
  const run = async (changes, message, done = () => {}) => {
    setProblem(NO_PROBLEM);
    announce("");
    try {
      await declare(unit, changes, message);
      done();
    } catch (e) {
      setProblem(problemInWords(e, { labels: AVAILABILITY_LABELS }));
    }
  };
  const step = (delta) => () => setPlaces(String(Math.max(0, (Number(shownPlaces) || 0) + delta)));
  const save = () => run({ open_places: shownPlaces.trim() === "" ? null : Number(shownPlaces) }, undefined, () => setPlaces(null));
  const closed = unit.status === "closed";
  const f = problem.fields;
  const placesId = `places-${unit.id}`;
  return html`<tr data-unit=${unit.id}>
    <td><strong>${unit.name}</strong><div class="muted">${codes.label("kinds", unit.kind)}</div></td>
    <td>
      <div class="row-actions">
        <button type="button" class="secondary" aria-label=${`One fewer place at ${unit.name}`} onClick=${step(-1)}>−</button>
        <input id=${placesId} type="number" min="0" class="places" style="width:5rem" aria-label=${`Open places at ${unit.name}`}
          value=${shownPlaces} onInput=${(e) => setPlaces(e.currentTarget.value)} ...${invalid(placesId, f.open_places)} />
        <button type="button" class="secondary" aria-label=${`One more place at ${unit.name}`} onClick=${step(1)}>+</button>
        <button type="button" aria-label=${`Save open places at ${unit.name}`} onClick=${save}>Save</button>
      </div>
      ${f.open_places ? html`<p class="error field-error" id=${`${placesId}-error`} role="alert">${f.open_places}</p>` : null}
      ${places !== null && places !== String(unit.open_places) ? html`<p class="muted">Not saved yet (now ${unit.open_places})</p>` : null}
    </td>
    <td><span class=${`badge ${unit.available > 0 ? "ok" : "bad"}`} data-field="available">${unit.available} free</span>
      <div class="muted">${unit.held} held · ${unit.occupied} occupied</div></td>
    <td>${closed
      ? html`<div><span class="badge bad">closed: ${unit.closed_reason ? codes.label("closed_reasons", unit.closed_reason) : ""}</span>
          <button type="button" class="secondary" aria-label=${`Reopen ${unit.name}`} onClick=${() => run({ status: "open" })}>Reopen</button></div>`
      : html`<div><span class="badge ok">open</span></div>
        <div class="row-actions">
          <select aria-label=${`Reason to close ${unit.name}`} value=${shownReason} onChange=${(e) => setReason(e.currentTarget.value)}
            ...${invalid(`reason-${unit.id}`, f.closed_reason)}><option value="">close for…</option>${options(codes.closed_reasons)}</select>
          <button type="button" class="danger" aria-label=${`Close ${unit.name}`} onClick=${() => (shownReason
            ? run({ status: "closed", closed_reason: shownReason }, undefined, () => setReason(null))
            : setProblem({ fields: { closed_reason: "Choose the reason for closing first." }, general: "" }))}>Close</button>
        </div>
        ${f.closed_reason ? html`<p class="error field-error" id=${`reason-${unit.id}-error`} role="alert">${f.closed_reason}</p>` : null}`}</td>
    <td><div class=${unit.stale ? "stale" : ""}>${unit.stale ? "⚠ stale: " : ""}${londonTime(unit.last_confirmed_at)}</div>
      <div class="muted">by ${unit.last_confirmed_by}</div>
      <button type="button" class="secondary" aria-label=${`Figures are current at ${unit.name}`}
        onClick=${() => run({}, `${unit.name}: figures confirmed`)}>Figures are current</button>
      ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}</td>
  </tr>`;
}

// A row's problem in one line, where the row has no field of its own to put it beside.
function said(problem) {
  const text = [...Object.values(problem.fields), problem.general].filter(Boolean).join(" ");
  return text ? html`<p class="error" role="alert">${text}</p>` : null;
}

function HoldRow({ hold }) {
  const unit = state.units.get(hold.unit_id);
  const [declining, setDeclining] = useState(false);
  const [oap, setOap] = useState("");
  const [problem, setProblem] = useProblem();
  const since = state.fresh.get(hold.id);
  // A new hold stays highlighted for NEW_MS.
  useEffect(() => {
    if (since === undefined) return undefined;
    const timer = setTimeout(() => { state.fresh.delete(hold.id); redraw(); }, Math.max(0, since + NEW_MS - Date.now()));
    return () => clearTimeout(timer);
  }, [since]);
  // The hold leaves the board; an arrival's answer is the placement it became. Figures follow by event.
  const act = async (path, body, done) => {
    setProblem(NO_PROBLEM);
    try {
      const answer = await api(`/api/holds/${hold.id}/${path}`, { method: "POST", body });
      holds.set(holds.items.filter((h) => h.id !== hold.id));
      if (path === "arrive") placements.set([...placements.items.filter((p) => p.id !== answer.id), answer]);
      announce(done);
    } catch (e) {
      setProblem(problemInWords(e, { labels: { oap_reason: "Out-of-area reason", reason: "Decline reason" },
        conflict: `The hold for ${hold.person.ref} is no longer held.` }));
    }
  };
  const who = `${hold.person.ref} at ${unit ? unit.name : "this unit"}`;
  return html`<tr data-hold=${hold.id} class=${since !== undefined ? "is-new" : ""}>
    <td>${unit ? unit.name : hold.unit_id}${since !== undefined ? html` <span class="badge new">new</span>` : null}</td>
    <td>${hold.person.ref}, ${hold.person.age}, ${hold.person.sex}<div class="muted">${codes.label("purposes", hold.purpose)}${
      hold.partial ? " · risks: …" : hold.risk_flags.length ? ` · risks: ${hold.risk_flags.map((f) => codes.label("risk_flags", f)).join(", ")}` : ""}</div></td>
    <td><${Countdown} iso=${hold.expires_at} /><div class="muted">until ${londonTime(hold.expires_at)}</div>
      ${hold.conveyance?.eta ? html`<div>ETA ${londonTime(hold.conveyance.eta)}</div>` : null}</td>
    <td><div class="row-actions">
      <select aria-label=${`Out-of-area reason for ${who} (if asked)`} value=${oap} onChange=${(e) => setOap(e.currentTarget.value)}>
        <option value="">no OAP reason</option>${options(codes.oap_reasons, (c) => `${c.code} ${c.label}`)}</select>
      <button type="button" aria-label=${`Arrived: ${who}`} onClick=${() => act("arrive", oap ? { oap_reason: oap } : {}, `Arrival recorded: ${who}`)}>Arrived</button>
      <button type="button" class="danger" aria-label=${`Decline the hold for ${who}`} aria-expanded=${declining}
        onClick=${() => setDeclining(true)}>Decline</button>
    </div>
    ${declining ? html`<${Confirm} id=${`decline-${hold.id}`} question=${`Decline the hold for ${who}?`} action="Yes, decline the hold"
      choiceLabel="Reason for declining" choices=${codes.decline_reasons} missing="Choose the reason for declining first."
      onConfirm=${(reason) => act("decline", { reason }, `Hold declined: ${who}`)} onCancel=${() => setDeclining(false)} />` : null}
    ${said(problem)}</td>
  </tr>`;
}

const DISCHARGE_LABELS = { outcome: "Outcome", ended_at: "Left at" };

function PlacementRow({ p }) {
  const unit = state.units.get(p.unit_id);
  const where = unit ? unit.name : "this unit";
  const [discharging, setDischarging] = useState(false);
  const [endedAt, setEndedAt] = useState("");
  const [problem, setProblem] = useProblem();
  const discharge = async (outcome) => {
    setProblem(NO_PROBLEM);
    const times = readLondonFields({ ended_at: endedAt }, DISCHARGE_LABELS);
    if (times.fields.ended_at) return setProblem({ fields: times.fields, general: "" });  // nothing is sent
    try {
      await api(`/api/placements/${p.id}/discharge`, { method: "POST", body: { outcome, ...times.values } });
      placements.set(placements.items.filter((q) => q.id !== p.id));
      announce(`Discharge recorded: ${p.person.ref}`);
    } catch (e) {
      setProblem(problemInWords(e, { labels: DISCHARGE_LABELS }));
    }
  };
  return html`<tr data-placement=${p.id}>
    <td>${unit ? unit.name : p.unit_id}</td>
    <td>${p.person.ref}, ${p.person.age}, ${p.person.sex}</td>
    <td>${codes.label("legal_bases", p.legal_basis)}<div class="muted">since ${londonTime(p.started_at)}</div></td>
    <td>${p.s136_deadline ? html`<${Countdown} iso=${p.s136_deadline} />` : "—"}</td>
    <td><div class="row-actions">
      <button type="button" aria-label=${`Discharge ${p.person.ref} from ${where}`} aria-expanded=${discharging}
        onClick=${() => setDischarging(true)}>Discharge</button></div>
      ${discharging ? html`<${Confirm} id=${`discharge-${p.id}`} question=${`Discharge ${p.person.ref} from ${where}?`} action="Yes, discharge"
        choiceLabel="Outcome" choices=${codes.outcomes} missing="Choose the outcome of the stay first."
        onConfirm=${discharge} onCancel=${() => setDischarging(false)}>
        <${DateTimeField} id=${`ended-${p.id}`} label="Left at (if earlier)" value=${endedAt} onInput=${setEndedAt}
          error=${problem.fields.ended_at} /><//>` : null}
      ${said({ ...problem, fields: { ...problem.fields, ended_at: undefined } })}</td>
  </tr>`;
}

const ADMIT_LABELS = { unit_id: "Unit", "person.ref": "Person reference", "person.age": "Age", "person.sex": "Sex",
  "person.home_area": "Home area", legal_basis: "Legal basis", started_at: "Admitted at", s136_clock_started_at: "s136 clock started",
  detention_id: "Detention reference", oap_reason: "Out-of-area reason", over_capacity: "No place free",
  age_exception_reason: "Why a 16 or 17-year-old is on an adult ward" };
const NO_ADMISSION = { unit_id: "", ref: "", age: "", sex: "", home_area: "", legal_basis: "", started_at: "", s136_clock_started_at: "",
  detention_id: "", oap_reason: "", over_capacity: false, age_exception_reason: "" };

// A direct admission (POST /api/placements): someone admitted without a hold, e.g. brought in by the
// police or continuing an s136 detention from an emergency department (its detention reference).
function AdmitForm({ units }) {
  const [a, setA] = useState(NO_ADMISSION);
  const [problem, setProblem] = useProblem();
  const set = (name) => (event) => setA({ ...a, [name]: event.currentTarget.type === "checkbox" ? event.currentTarget.checked : event.currentTarget.value });
  const type = (name) => (text) => setA({ ...a, [name]: text });
  const submit = async (event) => {
    event.preventDefault();
    setProblem(NO_PROBLEM);
    const times = readLondonFields({ started_at: a.started_at, s136_clock_started_at: a.s136_clock_started_at }, ADMIT_LABELS);
    if (Object.keys(times.fields).length) return setProblem({ fields: times.fields, general: "" });  // nothing is sent
    const body = { unit_id: a.unit_id, legal_basis: a.legal_basis, ...times.values,
      person: { ref: a.ref.trim(), age: a.age === "" ? null : Number(a.age), sex: a.sex, home_area: a.home_area } };
    for (const name of ["detention_id", "oap_reason", "age_exception_reason"]) if (a[name].trim()) body[name] = a[name].trim();
    if (a.over_capacity) body.over_capacity = true;
    try {
      const placed = await api("/api/placements", { method: "POST", body });
      placements.set([...placements.items.filter((p) => p.id !== placed.id), placed]);
      setA(NO_ADMISSION);
      announce(`Admitted ${placed.person.ref} to ${state.units.get(placed.unit_id)?.name || "the unit"}.`);
    } catch (e) {
      setProblem(problemInWords(e, { labels: ADMIT_LABELS }));
    }
  };
  const f = problem.fields;
  const input = (name, id, attrs = {}) => html`<input id=${id} value=${a[name]} onInput=${set(name)} ...${attrs}
    ...${invalid(id, f[name])} />`;
  const choose = (name, id, list, text) => html`<select id=${id} value=${a[name]} onChange=${set(name)} ...${invalid(id, f[name])}>
    <option value="">choose…</option>${list}</select>`;
  return html`<form class="card" id="admit-form" aria-labelledby="admit-h" onSubmit=${submit}>
    <h2 id="admit-h">Admit directly (no hold)</h2>
    <div class="grid">
      <${Field} id="ad-unit" label="Unit" error=${f.unit_id}>${choose("unit_id", "ad-unit",
        units.map((u) => html`<option key=${u.id} value=${u.id}>${u.name}</option>`))}<//>
      <${Field} id="ad-ref" label="Person reference" error=${f["person.ref"]}>
        ${input("ref", "ad-ref", { maxlength: 40, placeholder: "your team's reference, never an NHS number" })}<//>
      <${Field} id="ad-age" label="Age" error=${f["person.age"]}>${input("age", "ad-age", { type: "number", min: 0, max: 120 })}<//>
      <${Field} id="ad-sex" label="Sex" error=${f["person.sex"]}>${choose("sex", "ad-sex", options(codes.person_sexes))}<//>
      <${Field} id="ad-home" label="Home area" error=${f["person.home_area"]}>${choose("home_area", "ad-home",
        state.areas.map((area) => html`<option key=${area.code} value=${area.code}>${area.name}</option>`))}<//>
      <${Field} id="ad-basis" label="Legal basis" error=${f.legal_basis}>${choose("legal_basis", "ad-basis", options(codes.legal_bases))}<//>
      <${DateTimeField} id="ad-start" label="Admitted at (blank: now)" value=${a.started_at} onInput=${type("started_at")} error=${f.started_at} />
      <${DateTimeField} id="ad-clock" label="s136 clock started (if elsewhere first)" value=${a.s136_clock_started_at}
        onInput=${type("s136_clock_started_at")} error=${f.s136_clock_started_at} />
      <${Field} id="ad-detention" label="Detention reference (continuing an s136)" error=${f.detention_id}>
        ${input("detention_id", "ad-detention", { maxlength: 36 })}<//>
      <${Field} id="ad-oap" label="Out-of-area reason" error=${f.oap_reason}>
        <select id="ad-oap" value=${a.oap_reason} onChange=${set("oap_reason")} ...${invalid("ad-oap", f.oap_reason)}>
          <option value="">not out of area</option>${options(codes.oap_reasons, (c) => `${c.code} ${c.label}`)}</select><//>
      <${Field} id="ad-age-why" label="Why a 16 or 17-year-old is on an adult ward" error=${f.age_exception_reason}>
        ${input("age_exception_reason", "ad-age-why", { maxlength: 280 })}<//>
      <div><label class="check" for="ad-over"><input id="ad-over" type="checkbox" checked=${a.over_capacity} onChange=${set("over_capacity")} />
        No place is free: admit over capacity</label>${f.over_capacity ? html`<p class="error field-error" role="alert">${f.over_capacity}</p>` : null}</div>
    </div>
    ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
    <button type="submit">Admit</button>
  </form>`;
}

function Table({ caption, headers, rows, empty }) {
  return html`<section class="card"><h2>${caption}</h2>
    ${rows.length ? html`<table><thead><tr>${headers.map((h, i) => html`<th key=${i} scope="col">${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>`
      : html`<p class="empty">${empty}</p>`}</section>`;
}

function App() {
  const units = [...state.units.values()].sort((a, b) => a.name.localeCompare(b.name));
  return html`
    <p id="announce" class="announce" role="status" aria-live="polite">${state.announcement}</p>
    <${EscalationPanel} providerId=${state.me.provider_id} />
    <${Table} caption="Your units" headers=${["Unit", "Open places", "Availability", "Status", "Last confirmed"]}
      rows=${units.map((unit) => html`<${UnitRow} key=${unit.id} unit=${unit} />`)}
      empty="You have no units. Ask an admin to link your account to your provider's units." />
    <${Table} caption="Holds on your units" headers=${["Unit", "Person", "Expires in", "Actions"]}
      rows=${holds.items.map((hold) => html`<${HoldRow} key=${hold.id} hold=${hold} />`)} empty="No live holds on your units." />
    <${Table} caption="People placed" headers=${["Unit", "Person", "Legal basis", "s136 deadline", "Discharge"]}
      rows=${placements.items.map((p) => html`<${PlacementRow} key=${p.id} p=${p} />`)} empty="Nobody is placed on your units." />
    ${units.length ? html`<${AdmitForm} units=${units} />` : null}`;
}

// A hold made elsewhere on one of these units: highlighted, and said in the live region.
function incoming(d) {
  const unit = state.units.get(d.unit_id);
  state.fresh.set(d.hold_id, Date.now());
  announce(`New hold on ${unit.name}: ${d.person.ref}, ${d.person.age}, ${d.person.sex}, ${codes.label("purposes", d.purpose)}, until ${londonTime(d.expires_at)}`);
}

function onEvent(frame) {
  const d = frame.data;
  escalations.event(frame);
  if (frame.type === "unit.availability" && state.units.has(d.unit_id)) {
    const unit = state.units.get(d.unit_id);
    state.units.set(unit.id, { ...unit, ...d });
    redraw();
  } else if (frame.type.startsWith("hold.") || frame.type === "conveyance.updated") {
    if (frame.type === "hold.created" && state.units.has(d.unit_id) && !holds.items.some((h) => h.id === d.hold_id)) incoming(d);
    if (ENDED.has(frame.type)) state.fresh.delete(d.hold_id);
    holds.event(frame);
  } else if (frame.type.startsWith("placement.") || frame.type === "s136.extended") {
    placements.event(frame);
  } else if (frame.type === "unit.stale") {
    showBanner(`${d.name}: figures are stale — please confirm them`);
    const unit = state.units.get(d.unit_id);
    if (unit) {
      const { last_confirmed_at, last_confirmed_by } = d;
      state.units.set(unit.id, { ...unit, last_confirmed_at, last_confirmed_by, stale: true });
      redraw();
    }
  } else if (frame.type === "s136.warning" || frame.type === "s136.breach") {
    showBanner(frame.type === "s136.breach" ? `s136 deadline passed for ${d.person?.ref ?? "a detained person"}`
      : `s136 deadline for ${d.person?.ref ?? "a detained person"} in ${plural(Math.round(d.minutes_left), "minute")}`);
    placements.event(frame);
  }
}

state.me = await whoAmI();
state.areas = await api("/api/areas");
redraw = mount(app, App);
window.addEventListener("capacity:online", () => { loadAll().catch(() => {}); });
connectEvents({ onEvent, resync: loadAll });
