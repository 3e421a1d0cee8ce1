// The bed manager's live board: their units' figures, holds on them with countdowns, arrivals and
// discharges. Everything re-reads from the API after a reconnect; events patch the board in between,
// from their own data: only a new hold, whose risk flags the event lacks, is re-read (coalesced). Drawn
// with Preact (view.js): a figure being typed, its focus and a pending Save survive every live update.
import { api, connectEvents, liveList, loadCodes, londonTime, problemInWords, showBanner, whoAmI } from "./common.js";
import { Countdown, html, invalid, mount, NO_PROBLEM, plural, useEffect, useProblem, useState } from "./view.js";
import { EscalationPanel, escalations } from "./escalation.js";

const codes = await loadCodes();
const app = document.getElementById("app");
// `fresh`: holds that arrived while the board was open (id -> when), highlighted for NEW_MS.
const state = { me: null, units: new Map(), announcement: "", fresh: new Map() };
const NEW_MS = 2 * 60 * 1000;
let redraw = () => {};
const options = (list, text = (c) => c.label) => list.map((c) => html`<option key=${c.code} value=${c.code}>${text(c)}</option>`);

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
  const shownReason = reason ?? (unit.closed_reason || codes.closed_reasons[0].code);
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
      : html`<div class="row-actions">
          <select aria-label=${`Reason ${unit.name} is closed`} value=${shownReason} onChange=${(e) => setReason(e.currentTarget.value)}
            ...${invalid(`reason-${unit.id}`, f.closed_reason)}>${options(codes.closed_reasons)}</select>
          <button type="button" class="danger" aria-label=${`Close ${unit.name}`}
            onClick=${() => run({ status: "closed", closed_reason: shownReason }, undefined, () => setReason(null))}>Close</button>
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
  const [reason, setReason] = useState(codes.decline_reasons[0].code);
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
      <select aria-label=${`Decline reason for ${who}`} value=${reason} onChange=${(e) => setReason(e.currentTarget.value)}>${options(codes.decline_reasons)}</select>
      <button type="button" class="danger" aria-label=${`Decline the hold for ${who}`} onClick=${() => act("decline", { reason }, `Hold declined: ${who}`)}>Decline</button>
    </div>${said(problem)}</td>
  </tr>`;
}

function PlacementRow({ p }) {
  const unit = state.units.get(p.unit_id);
  const [outcome, setOutcome] = useState(codes.outcomes[0].code);
  const [problem, setProblem] = useProblem();
  const discharge = async () => {
    setProblem(NO_PROBLEM);
    try {
      await api(`/api/placements/${p.id}/discharge`, { method: "POST", body: { outcome } });
      placements.set(placements.items.filter((q) => q.id !== p.id));
      announce(`Discharge recorded: ${p.person.ref}`);
    } catch (e) {
      setProblem(problemInWords(e, { labels: { outcome: "Outcome" } }));
    }
  };
  return html`<tr data-placement=${p.id}>
    <td>${unit ? unit.name : p.unit_id}</td>
    <td>${p.person.ref}, ${p.person.age}, ${p.person.sex}</td>
    <td>${codes.label("legal_bases", p.legal_basis)}<div class="muted">since ${londonTime(p.started_at)}</div></td>
    <td>${p.s136_deadline ? html`<${Countdown} iso=${p.s136_deadline} />` : "—"}</td>
    <td><div class="row-actions">
      <select aria-label=${`Discharge outcome for ${p.person.ref}`} value=${outcome} onChange=${(e) => setOutcome(e.currentTarget.value)}>${options(codes.outcomes)}</select>
      <button type="button" aria-label=${`Discharge ${p.person.ref} from ${unit ? unit.name : "this unit"}`} onClick=${discharge}>Discharge</button></div>
      ${said(problem)}</td>
  </tr>`;
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
      rows=${placements.items.map((p) => html`<${PlacementRow} key=${p.id} p=${p} />`)} empty="Nobody is placed on your units." />`;
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
redraw = mount(app, App);
window.addEventListener("capacity:online", () => { loadAll().catch(() => {}); });
connectEvents({ onEvent, resync: loadAll });
