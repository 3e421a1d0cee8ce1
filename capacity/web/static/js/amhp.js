// The AMHP's finder: units near their area with live availability from the first moment, a search by
// eligibility and location that also says why a unit is not eligible, holds with countdowns, extend and
// release, conveyance, arrival, and s136 clocks with their warnings.
import { api, ApiError, codeOptions, connectEvents, countdown, el, liveList, loadCodes, londonTime, showBanner, whoAmI } from "./common.js";

const TIMES = [["requested_at", "Requested"], ["dispatched_at", "Dispatched"], ["at_scene_at", "At scene"],
  ["departed_at", "Departed"], ["arrived_at", "Arrived"], ["eta", "ETA"]];
const app = document.getElementById("app");
const state = { me: null, areas: new Map(), results: [], ineligible: [], query: null };
const codes = await loadCodes();
const withCode = (c) => `${c.code} ${c.label}`;

// datetime-local inputs speak the browser's local time; the API speaks UTC ISO 8601.
const toLocalInput = (iso) => {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};
const fromLocalInput = (value) => (value ? new Date(value).toISOString() : undefined);

function field(id, text, input) {
  input.id = id;
  return el("div", {}, el("label", { for: id }, text), input);
}

function searchForm() {
  const q = state.query;
  const homeArea = el("select", { name: "home_area" }, state.me.areas.map((c) => el("option", { value: c }, state.areas.get(c)?.name || c)));
  homeArea.value = q.home_area;
  const near = el("select", { name: "near_area" }, [...state.areas.values()].map((a) => el("option", { value: a.code }, `centre of ${a.name}`)),
    el("option", { value: "coords" }, "coordinates…"));
  near.value = q.near_area;
  const coords = el("input", { name: "coords", placeholder: "51.45,-2.59", value: q.coords || "" });
  const kind = el("select", { name: "kind" }, el("option", { value: "" }, "any kind"), codeOptions(codes.kinds));
  kind.value = q.kind;
  // The search takes the sexes a unit can be limited to.
  const sex = el("select", { name: "sex" }, el("option", { value: "" }, "not given"),
    codeOptions(codes.person_sexes.filter((s) => codes.has("unit_sexes", s.code))));
  sex.value = q.sex;
  const age = el("input", { name: "age", type: "number", min: "0", max: "120", value: q.age ?? "" });
  const available = el("input", { name: "available_only", type: "checkbox", checked: q.available_only, style: "width:auto" });
  const form = el("form", { class: "card", id: "search-form", role: "search", "aria-label": "Find a place" },
    el("h2", {}, "Find a place"),
    el("div", { class: "grid" },
      field("s-kind", "Kind", kind), field("s-age", "Age", age), field("s-sex", "Sex", sex),
      field("s-home", "Home area", homeArea), field("s-near", "Near", near), field("s-coords", "Coordinates (lat,lon)", coords),
      el("div", {}, el("label", { for: "s-available" }, available, " Only with a free place")),
      el("div", {}, el("button", { type: "submit" }, "Search"))));
  available.id = "s-available";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    state.query = { kind: kind.value, age: age.value === "" ? null : Number(age.value), sex: sex.value,
      home_area: homeArea.value, near_area: near.value, coords: coords.value.trim(), available_only: available.checked };
    await search();
  });
  return form;
}

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
    state.ineligible = all.filter((u) => !ok.has(u.id)).map((u) => ({ unit: u, why: whyNot(u) }));
    showBanner("");
  } catch (e) {
    showBanner(e instanceof ApiError ? `Search: ${e.message}` : String(e));
  }
  render();
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

function holdForm(unit) {
  const q = state.query;
  const ref = el("input", { required: true, maxlength: "40", placeholder: "your team's reference, never an NHS number" });
  const age = el("input", { type: "number", min: "0", max: "120", required: true, value: q.age ?? "" });
  const sex = el("select", {}, codeOptions(codes.person_sexes));
  if (q.sex) sex.value = q.sex;
  const ethnicity = el("select", {}, el("option", { value: "" }, "not recorded"), codeOptions(codes.ethnicities, withCode));
  const purpose = el("select", {}, codeOptions(codes.purposes));
  purpose.value = codes.find("kinds", unit.kind)?.purpose ?? purpose.value;
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const form = el("form", { class: "card", "aria-label": `Hold a place at ${unit.name}` },
    el("h3", {}, `Hold a place at ${unit.name}`),
    el("div", { class: "grid" }, field("h-ref", "Person reference", ref), field("h-age", "Age", age), field("h-sex", "Sex", sex),
      field("h-eth", "Ethnic category", ethnicity), field("h-purpose", "Purpose", purpose)),
    error,
    el("div", { class: "row-actions" }, el("button", { type: "submit" }, "Place hold"),
      el("button", { type: "button", class: "secondary", onclick: () => form.remove() }, "Cancel")));
  const key = crypto.randomUUID();  // a retried click never makes a second hold
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const person = { ref: ref.value.trim(), age: Number(age.value), sex: sex.value, home_area: q.home_area };
    if (ethnicity.value) person.ethnicity = ethnicity.value;
    try {
      const response = await api("/api/holds", { method: "POST", headers: { "Idempotency-Key": key },
        body: { unit_id: unit.id, purpose: purpose.value, person } });
      form.remove();
      showBanner("");
      state.announcement = `Held a place at ${unit.name} until ${londonTime(response.expires_at)}`;
      holds.set([{ ...response, unit_name: unit.name }, ...holds.items.filter((h) => h.id !== response.id)]);
    } catch (e) {
      error.textContent = e.status === 409 ? "No place is free there any more. Search again." : e.message;
      error.hidden = false;
    }
  });
  return form;
}

function resultRow(unit) {
  const row = el("tr", { "data-unit": unit.id },
    el("td", {}, el("strong", {}, unit.name), el("div", { class: "muted" }, codes.label("kinds", unit.kind),
      unit.out_of_area ? " · out of area" : "")),
    el("td", {}, unit.distance_km !== undefined ? `${unit.distance_km} km` : "—"),
    el("td", {}, unit.status === "closed" ? el("span", { class: "badge bad" }, "closed")
      : el("span", { class: `badge ${unit.available > 0 ? "ok" : "bad"}`, "data-field": "available" }, `${unit.available} of ${unit.open_places} free`)),
    el("td", { class: "optional" }, el("span", { class: unit.stale ? "stale" : "" }, unit.stale ? "⚠ stale, " : "", londonTime(unit.last_confirmed_at))),
    el("td", {}, unit.available > 0 ? el("button", { type: "button", onclick: () => row.after(el("tr", {}, el("td", { colspan: "5" }, holdForm(unit)))) }, "Hold") : ""),
  );
  return row;
}

function conveyancePanel(hold) {
  const c = hold.conveyance || {};
  const mode = el("select", {}, codeOptions(codes.conveyance_modes));
  mode.value = c.mode || codes.conveyance_modes[0].code;
  // A police vehicle needs a coded reason (what reports count); the note stays with person-level roles.
  const reason = el("select", {}, el("option", { value: "" }, "not a police vehicle"), codeOptions(codes.police_vehicle_reasons));
  reason.value = c.police_vehicle_reason || "";
  const note = el("input", { placeholder: "note (optional)", maxlength: "280", value: c.police_vehicle_note || "" });
  const inputs = Object.fromEntries(TIMES.map(([name]) => [name, el("input", { type: "datetime-local", value: toLocalInput(c[name]) })]));
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const form = el("form", { class: "card", "aria-label": "Conveyance" }, el("h4", {}, "Conveyance"),
    el("div", { class: "grid" }, field(`c-mode-${hold.id}`, "Mode", mode), field(`c-reason-${hold.id}`, "Police vehicle reason", reason),
      field(`c-note-${hold.id}`, "Police vehicle note", note),
      TIMES.map(([name, text]) => field(`c-${name}-${hold.id}`, text, inputs[name]))),
    c.ambulance_response_minutes != null ? el("p", { class: c.within_standard === false ? "warning" : "muted" },
      `Ambulance response ${c.ambulance_response_minutes} min (standard ${c.ambulance_standard_minutes})`) : null,
    error, el("button", { type: "submit" }, "Save conveyance"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = { mode: mode.value };
    if (reason.value) body.police_vehicle_reason = reason.value;
    if (note.value.trim()) body.police_vehicle_note = note.value.trim();
    for (const [name] of TIMES) if (inputs[name].value) body[name] = fromLocalInput(inputs[name].value);
    ownConveyance.add(hold.id);  // its conveyance.updated event is then this answer's echo
    try {
      const saved = await api(`/api/holds/${hold.id}/conveyance`, { method: "PUT", body });
      holds.set(holds.items.map((h) => (h.id === hold.id ? { ...h, conveyance: saved } : h)));
    } catch (e) { ownConveyance.delete(hold.id); error.textContent = e.message; error.hidden = false; }
  });
  return form;
}

function holdCard(hold) {
  const minutes = el("input", { type: "number", min: "1", max: "240", value: "30", style: "width:5rem" });
  const why = el("input", { placeholder: "reason, e.g. ambulance delayed" });
  const clockStart = el("input", { type: "datetime-local" });
  const oap = el("select", {}, el("option", { value: "" }, "not out of area"), codeOptions(codes.oap_reasons, withCode));
  const error = el("p", { class: "error", role: "alert", hidden: true });
  // The answer says what became of the hold (extend, release) or the placement it became (arrive).
  const act = async (path, body) => {
    error.hidden = true;
    try {
      const answer = await api(`/api/holds/${hold.id}/${path}`, { method: "POST", body });
      if (path === "extend") holds.set(holds.items.map((h) => (h.id === hold.id ? { ...h, ...answer, unit_name: h.unit_name, partial: false } : h)));
      else holds.set(holds.items.filter((h) => h.id !== hold.id));
      if (path === "arrive" && answer.s136_deadline) {
        placements.set([...placements.items.filter((p) => p.id !== answer.id), answer]);
      }
    } catch (e) { error.textContent = e.message; error.hidden = false; }
  };
  return el("article", { class: "card", "data-hold": hold.id },
    el("h3", {}, `${hold.person.ref} → ${hold.unit_name || "unit"}`),
    el("p", {}, el("strong", { class: "countdown", "data-expires": hold.expires_at }, countdown(hold.expires_at)),
      ` left · until ${londonTime(hold.expires_at)} · extended ${hold.extensions}×`),
    el("div", { class: "row-actions" }, field(`x-min-${hold.id}`, "Minutes", minutes), field(`x-why-${hold.id}`, "Reason", why),
      el("button", { type: "button", onclick: () => act("extend", { minutes: Number(minutes.value), reason: why.value }) }, "Extend"),
      el("button", { type: "button", class: "danger", onclick: () => act("release") }, "Release")),
    el("div", { class: "row-actions" }, hold.purpose === "s136" ? field(`a-clock-${hold.id}`, "s136 clock started (if earlier)", clockStart) : null,
      field(`a-oap-${hold.id}`, "Out-of-area reason", oap),
      el("button", { type: "button", onclick: () => {
        const body = {};
        if (clockStart.value) body.s136_clock_started_at = fromLocalInput(clockStart.value);
        if (oap.value) body.oap_reason = oap.value;
        act("arrive", body);
      } }, "Arrived")),
    error, conveyancePanel(hold));
}

function clockRow(p) {
  const ms = new Date(p.s136_deadline).getTime() - Date.now();
  const cls = ms < 30 * 60000 ? "badge bad" : ms < 2 * 3600000 ? "badge" : "badge ok";
  return el("tr", {}, el("td", {}, p.person.ref), el("td", {}, londonTime(p.s136_clock_started_at)),
    el("td", {}, el("span", { class: cls }, el("span", { class: "countdown", "data-expires": p.s136_deadline }, countdown(p.s136_deadline)))),
    el("td", {}, p.s136_extension_hours ? `+${p.s136_extension_hours} h (${p.s136_extension_authorised_by})` : "—"));
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
    const name = [...state.results, ...state.ineligible.map((i) => i.unit)].find((u) => u.id === d.unit_id)?.name;
    return [{ id: d.hold_id, unit_id: d.unit_id, status: d.status, purpose: d.purpose, expires_at: d.expires_at, person: d.person,
      risk_flags: [], extensions: 0, conveyance: null, unit_name: name, partial: true }, ...items];
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

const holds = liveList({ read: readHolds, apply: applyHold, onChange: () => render() });
const placements = liveList({
  read: async () => (await api("/api/placements?active=true")).filter((p) => p.s136_deadline),
  apply: applyPlacement,
  onChange: () => render(),
});

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows));
}

function render() {
  const active = document.activeElement;
  if (active && app.contains(active) && ["INPUT", "SELECT"].includes(active.tagName)) { state.pending = true; return; }
  state.pending = false;
  app.replaceChildren(
    el("p", { id: "announce", class: "muted", role: "status", "aria-live": "polite" }, state.announcement || ""),
    searchForm(),
    el("section", { class: "card", "aria-labelledby": "results-h" }, el("h2", { id: "results-h" }, "Places, nearest first"),
      state.results.length ? table(["Unit", "Distance", "Availability", "Last confirmed", ""], state.results.map(resultRow))
        : el("p", { class: "empty" }, "No eligible unit matches this search. Try another kind or area."),
      state.ineligible.length ? el("details", {}, el("summary", {}, `${state.ineligible.length} not eligible for this person`),
        el("ul", {}, state.ineligible.map(({ unit, why }) => el("li", {}, `${unit.name}: ${why}`)))) : null),
    el("section", { class: "card", "aria-labelledby": "holds-h" }, el("h2", { id: "holds-h" }, "Your holds"),
      holds.items.length ? holds.items.map(holdCard) : el("p", { class: "empty" }, "No live holds.")),
    el("section", { class: "card", "aria-labelledby": "clocks-h" }, el("h2", { id: "clocks-h" }, "Section 136 clocks"),
      placements.items.length ? table(["Person", "Clock started", "Time left", "Extension"], placements.items.map(clockRow))
        : el("p", { class: "empty" }, "No one is detained under s136 in your areas.")),
  );
}

function onEvent(frame) {
  if (frame.type === "unit.availability") {
    const patch = (u) => (u.id === frame.data.unit_id ? { ...u, ...frame.data } : u);
    state.results = state.results.map(patch);
    render();
  } else if (frame.type.startsWith("hold.") || frame.type === "conveyance.updated") {
    if (frame.type === "hold.expiring") showBanner(`A hold expires in ${frame.data.minutes_left} minutes`);
    holds.event(frame);
  } else if (frame.type.startsWith("placement.") || frame.type.startsWith("s136.")) {
    if (frame.type === "s136.warning") showBanner(`s136 deadline for ${frame.data.person.ref} in ${Math.round(frame.data.minutes_left)} minutes`);
    if (frame.type === "s136.breach") showBanner(`s136 deadline passed for ${frame.data.person.ref}`);
    placements.event(frame);
  }
}

app.addEventListener("focusout", () => setTimeout(() => { if (state.pending) render(); }, 0));
setInterval(() => {
  for (const node of document.querySelectorAll(".countdown")) node.textContent = countdown(node.dataset.expires);
}, 1000);

state.me = await whoAmI();
for (const area of await api("/api/areas")) state.areas.set(area.code, area);
const home = state.me.areas[0] || [...state.areas.keys()][0];
state.me.areas = state.me.areas.length ? state.me.areas : [...state.areas.keys()];
state.query = { kind: "", age: null, sex: "", home_area: home, near_area: home, coords: "", available_only: false };
render();
connectEvents({ onEvent, resync: async () => { await search(); await Promise.all([holds.refresh(), placements.refresh()]); } });
