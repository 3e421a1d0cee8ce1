// The bed manager's live board: their units' figures, holds on them with countdowns, arrivals and
// discharges. Everything re-reads from the API after a reconnect; events patch the board in between,
// from their own data: only a new hold, whose risk flags the event lacks, is re-read (coalesced).
import { api, ApiError, codeOptions, connectEvents, countdown, el, liveList, loadCodes, londonTime, showBanner, whoAmI } from "./common.js";

const codes = await loadCodes();
const app = document.getElementById("app");
const state = { me: null, units: new Map() };

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
  onChange: () => render(),
});
const placements = liveList({
  read: async () => (await api("/api/placements?active=true")).filter((p) => state.units.has(p.unit_id)),
  apply: applyPlacement,
  onChange: () => render(),
});

async function loadAll() {
  const units = await api("/api/units");
  state.units = new Map(units.filter(mine).map((u) => [u.id, u]));
  await Promise.all([holds.refresh(), placements.refresh()]);
}

async function declare(unit, changes, message) {
  try {
    const body = { open_places: unit.open_places, status: unit.status, closed_reason: unit.closed_reason, ...changes };
    if (body.status === "open") delete body.closed_reason;
    const updated = await api(`/api/units/${unit.id}/availability`, { method: "PUT", body });
    state.units.set(unit.id, { ...unit, ...updated });
    showBanner("");
    render();
    announce(message || `${unit.name}: saved`);
  } catch (e) {
    showBanner(e instanceof ApiError ? `${unit.name}: ${e.message}` : String(e));
  }
}

// Kept in state, so a redraw for a live event does not wipe what the user was just told.
function announce(text) {
  state.announcement = text;
  document.getElementById("announce").textContent = text;
}

function unitRow(unit) {
  const places = el("input", { type: "number", min: "0", value: unit.open_places, "aria-label": `Open places at ${unit.name}`,
    class: "places", style: "width:5rem" });
  const step = (delta) => () => { places.value = Math.max(0, Number(places.value) + delta); };
  const reason = el("select", { "aria-label": `Reason ${unit.name} is closed` }, codeOptions(codes.closed_reasons));
  if (unit.closed_reason) reason.value = unit.closed_reason;
  const closed = unit.status === "closed";
  return el("tr", { "data-unit": unit.id },
    el("td", {}, el("strong", {}, unit.name), el("div", { class: "muted" }, codes.label("kinds", unit.kind))),
    el("td", {},
      el("div", { class: "row-actions" },
        el("button", { type: "button", class: "secondary", "aria-label": `One fewer place at ${unit.name}`, onclick: step(-1) }, "−"),
        places,
        el("button", { type: "button", class: "secondary", "aria-label": `One more place at ${unit.name}`, onclick: step(1) }, "+"),
        el("button", { type: "button", onclick: () => declare(unit, { open_places: Number(places.value) }) }, "Save"))),
    el("td", {}, el("span", { class: `badge ${unit.available > 0 ? "ok" : "bad"}`, "data-field": "available" },
      `${unit.available} free`), el("div", { class: "muted" }, `${unit.held} held · ${unit.occupied} occupied`)),
    el("td", {}, closed
      ? el("div", {}, el("span", { class: "badge bad" }, `closed: ${unit.closed_reason ? codes.label("closed_reasons", unit.closed_reason) : ""}`),
        el("button", { type: "button", class: "secondary", onclick: () => declare(unit, { status: "open" }) }, "Reopen"))
      : el("div", { class: "row-actions" }, reason,
        el("button", { type: "button", class: "danger", onclick: () => declare(unit, { status: "closed", closed_reason: reason.value }) }, "Close"))),
    el("td", {}, el("div", { class: unit.stale ? "stale" : "" }, unit.stale ? "⚠ stale: " : "", londonTime(unit.last_confirmed_at)),
      el("div", { class: "muted" }, `by ${unit.last_confirmed_by}`),
      el("button", { type: "button", class: "secondary", onclick: () => declare(unit, {}, `${unit.name}: figures confirmed`) },
        "Figures are current")),
  );
}

function holdRow(hold) {
  const unit = state.units.get(hold.unit_id);
  const reason = el("select", { "aria-label": "Decline reason" }, codeOptions(codes.decline_reasons));
  const oap = el("select", { "aria-label": "Out-of-area reason (if asked)" }, el("option", { value: "" }, "no OAP reason"),
    codeOptions(codes.oap_reasons, (c) => `${c.code} ${c.label}`));
  // The hold leaves the board; an arrival's answer is the placement it became. Figures follow by event.
  const act = async (path, body, done) => {
    try {
      const answer = await api(`/api/holds/${hold.id}/${path}`, { method: "POST", body });
      holds.set(holds.items.filter((h) => h.id !== hold.id));
      if (path === "arrive") placements.set([...placements.items.filter((p) => p.id !== answer.id), answer]);
      announce(done);
    } catch (e) { showBanner(e.message); }
  };
  return el("tr", { "data-hold": hold.id },
    el("td", {}, unit ? unit.name : hold.unit_id),
    el("td", {}, `${hold.person.ref}, ${hold.person.age}, ${hold.person.sex}`, el("div", { class: "muted" }, codes.label("purposes", hold.purpose),
      hold.partial ? " · risks: …" : hold.risk_flags.length ? ` · risks: ${hold.risk_flags.map((f) => codes.label("risk_flags", f)).join(", ")}` : "")),
    el("td", {}, el("span", { class: "countdown", "data-expires": hold.expires_at }, countdown(hold.expires_at)),
      el("div", { class: "muted" }, `until ${londonTime(hold.expires_at)}`),
      hold.conveyance?.eta ? el("div", {}, `ETA ${londonTime(hold.conveyance.eta)}`) : null),
    el("td", {}, el("div", { class: "row-actions" },
      oap, el("button", { type: "button", onclick: () => act("arrive", oap.value ? { oap_reason: oap.value } : {}, "Arrival recorded") }, "Arrived"),
      reason, el("button", { type: "button", class: "danger", onclick: () => act("decline", { reason: reason.value }, "Hold declined") }, "Decline"))),
  );
}

function placementRow(p) {
  const unit = state.units.get(p.unit_id);
  const outcome = el("select", { "aria-label": "Discharge outcome" }, codeOptions(codes.outcomes));
  const discharge = async () => {
    try {
      await api(`/api/placements/${p.id}/discharge`, { method: "POST", body: { outcome: outcome.value } });
      placements.set(placements.items.filter((q) => q.id !== p.id));
      announce("Discharge recorded");
    } catch (e) { showBanner(e.message); }
  };
  return el("tr", { "data-placement": p.id },
    el("td", {}, unit ? unit.name : p.unit_id),
    el("td", {}, `${p.person.ref}, ${p.person.age}, ${p.person.sex}`),
    el("td", {}, codes.label("legal_bases", p.legal_basis), el("div", { class: "muted" }, `since ${londonTime(p.started_at)}`)),
    el("td", {}, p.s136_deadline ? el("span", { class: "countdown", "data-expires": p.s136_deadline }, countdown(p.s136_deadline)) : "—"),
    el("td", {}, el("div", { class: "row-actions" }, outcome, el("button", { type: "button", onclick: discharge }, "Discharge"))),
  );
}

function table(caption, headers, rows, empty) {
  return el("section", { class: "card" }, el("h2", {}, caption),
    rows.length ? el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows))
      : el("p", { class: "empty" }, empty));
}

function render() {
  // Never redraw under someone typing a figure: draw when they leave the field.
  const active = document.activeElement;
  if (active && app.contains(active) && ["INPUT", "SELECT"].includes(active.tagName)) {
    state.pending = true;
    return;
  }
  state.pending = false;
  const units = [...state.units.values()].sort((a, b) => a.name.localeCompare(b.name));
  app.replaceChildren(
    el("p", { id: "announce", class: "muted", role: "status", "aria-live": "polite" }, state.announcement || ""),
    table("Your units", ["Unit", "Open places", "Availability", "Status", "Last confirmed"], units.map(unitRow),
      "You have no units. Ask an admin to link your account to your provider's units."),
    table("Holds on your units", ["Unit", "Person", "Expires in", "Actions"], holds.items.map(holdRow),
      "No live holds on your units."),
    table("People placed", ["Unit", "Person", "Legal basis", "s136 deadline", "Discharge"], placements.items.map(placementRow),
      "Nobody is placed on your units."),
  );
}

function onEvent(frame) {
  if (frame.type === "unit.availability" && state.units.has(frame.data.unit_id)) {
    const unit = state.units.get(frame.data.unit_id);
    state.units.set(unit.id, { ...unit, ...frame.data });
    render();
  } else if (frame.type.startsWith("hold.") || frame.type === "conveyance.updated") {
    holds.event(frame);
  } else if (frame.type.startsWith("placement.") || frame.type === "s136.extended") {
    placements.event(frame);
  } else if (frame.type === "unit.stale") {
    showBanner(`${frame.data.name}: figures are stale — please confirm them`);
    const unit = state.units.get(frame.data.unit_id);
    if (unit) {
      const { last_confirmed_at, last_confirmed_by } = frame.data;
      state.units.set(unit.id, { ...unit, last_confirmed_at, last_confirmed_by, stale: true });
      render();
    }
  } else if (frame.type === "s136.warning" || frame.type === "s136.breach") {
    showBanner(frame.type === "s136.breach" ? "An s136 detention has passed its deadline" : `s136 deadline in ${frame.data.minutes_left} minutes`);
    placements.event(frame);
  }
}

app.addEventListener("focusout", () => setTimeout(() => { if (state.pending) render(); }, 0));

setInterval(() => {
  for (const node of document.querySelectorAll(".countdown")) node.textContent = countdown(node.dataset.expires);
}, 1000);

state.me = await whoAmI();
connectEvents({ onEvent, resync: loadAll });
