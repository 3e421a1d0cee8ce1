// Live holds and their conveyance, shared by the AMHP's and the conveyance crew's pages: the list of
// held places kept current from live events, and the conveyance form (mode, the times, ETA).
import { api, liveList, londonDateTime, problemInWords, readLondonFields } from "./common.js";
import { DateTimeField, Field, html, invalid, NO_PROBLEM, options, useProblem, useState } from "./view.js";

export const TIMES = [["requested_at", "Requested"], ["dispatched_at", "Dispatched"], ["at_scene_at", "At scene"],
  ["departed_at", "Departed"], ["arrived_at", "Arrived"], ["eta", "ETA"]];
const CONVEYANCE_LABELS = { mode: "Mode", police_vehicle_reason: "Police vehicle reason", police_vehicle_note: "Police vehicle note",
  ...Object.fromEntries(TIMES) };

export const ENDED = new Set(["hold.released", "hold.declined", "hold.expired", "hold.arrived"]);
export const sameInstant = (a, b) => (a ? new Date(a).getTime() : null) === (b ? new Date(b).getTime() : null);

// The caller's live holds (GET /api/holds?status=held), each with its `unit_name`: from `names()` (unit
// id -> name, what the page already knows) or read once per unit. `own` holds the ids whose conveyance
// this page is saving, so that the conveyance.updated event that echoes its answer needs no re-read.
export function liveHolds({ names = () => new Map(), onChange }) {
  const own = new Set();
  const unitNames = new Map();
  const nameOf = (id) => names().get(id) ?? unitNames.get(id);
  const read = async () => {
    for (const h of holds.items) if (h.unit_name) unitNames.set(h.unit_id, h.unit_name);
    const found = (await api("/api/holds?status=held")).map((h) => ({ ...h, unit_name: nameOf(h.unit_id) }));
    for (const hold of found.filter((h) => !h.unit_name)) {
      hold.unit_name = (await api(`/api/units/${hold.unit_id}`)).name;
      unitNames.set(hold.unit_id, hold.unit_name);
    }
    return found;
  };
  // One hold event or conveyance update applied to the live holds. A hold the page has not seen is shown
  // from the event and re-read (coalesced) for what the event lacks: its conveyance and extensions.
  const apply = (items, frame) => {
    const d = frame.data;
    const known = items.find((h) => h.id === d.hold_id);
    if (ENDED.has(frame.type)) return known ? items.filter((h) => h.id !== d.hold_id) : items;
    const patch = (changes) => items.map((h) => (h.id === d.hold_id ? { ...h, ...changes } : h));
    if (frame.type === "conveyance.updated") {
      if (!known) return items;
      const fields = { mode: d.mode, eta: d.eta, requested_at: d.requested_at, at_scene_at: d.at_scene_at, arrived_at: d.arrived_at,
        ambulance_response_minutes: d.ambulance_response_minutes, ambulance_standard_minutes: d.ambulance_standard_minutes };
      // Someone else's update: the event lacks the other times and the police vehicle reason.
      const echo = own.delete(d.hold_id);
      return patch({ expires_at: d.hold_expires_at, conveyance: { ...known.conveyance, ...fields }, partial: known.partial || !echo });
    }
    if (d.status !== "held") return items;
    if (!known) {
      return [{ id: d.hold_id, unit_id: d.unit_id, status: d.status, purpose: d.purpose, expires_at: d.expires_at, person: d.person,
        risk_flags: [], extensions: 0, conveyance: null, unit_name: nameOf(d.unit_id), partial: true }, ...items];
    }
    // An extension by hand counts in `extensions`, which the event lacks; one for the conveyance ETA does not.
    const counted = frame.type === "hold.extended" && d.reason !== "conveyance eta" && !sameInstant(known.expires_at, d.expires_at);
    return patch({ expires_at: d.expires_at, partial: known.partial || counted });
  };
  const holds = liveList({ read, apply, onChange });
  holds.own = own;
  return holds;
}

// The conveyance of one hold: what is typed stays over what the hold has, so a live update of the hold
// does not undo it; the times are typed in London time (view.js's DateTimeField).
export function ConveyancePanel({ hold, holds, codes }) {
  const c = hold.conveyance || {};
  const [draft, setDraft] = useState({});
  const [problem, setProblem] = useProblem();
  const shown = {
    mode: c.mode || codes.conveyance_modes[0].code, police_vehicle_reason: c.police_vehicle_reason || "",
    police_vehicle_note: c.police_vehicle_note || "", ...Object.fromEntries(TIMES.map(([name]) => [name, londonDateTime(c[name])])), ...draft,
  };
  const set = (name) => (event) => setDraft({ ...draft, [name]: event.currentTarget.value });
  const type = (name) => (text) => setDraft({ ...draft, [name]: text });
  const submit = async (event) => {
    event.preventDefault();
    setProblem(NO_PROBLEM);
    const times = readLondonFields(Object.fromEntries(TIMES.map(([name]) => [name, shown[name]])), CONVEYANCE_LABELS);
    if (Object.keys(times.fields).length) return setProblem({ fields: times.fields, general: "" });  // nothing is sent
    const body = { mode: shown.mode, ...times.values };
    if (shown.police_vehicle_reason) body.police_vehicle_reason = shown.police_vehicle_reason;
    if (shown.police_vehicle_note.trim()) body.police_vehicle_note = shown.police_vehicle_note.trim();
    holds.own.add(hold.id);  // its conveyance.updated event is then this answer's echo
    try {
      const saved = await api(`/api/holds/${hold.id}/conveyance`, { method: "PUT", body });
      setDraft({});
      holds.set(holds.items.map((h) => (h.id === hold.id ? { ...h, conveyance: saved } : h)));
    } catch (e) {
      holds.own.delete(hold.id);
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
      ${TIMES.map(([name, text]) => html`<${DateTimeField} key=${name} id=${id(name)} label=${text} error=${f[name]}
        value=${shown[name]} onInput=${type(name)} />`)}
    </div>
    ${c.ambulance_response_minutes != null ? html`<p class=${c.within_standard === false ? "warning" : "muted"}>
      Ambulance response ${c.ambulance_response_minutes} min (standard ${c.ambulance_standard_minutes})</p>` : null}
    ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
    <button type="submit" aria-label=${`Save conveyance for ${hold.person.ref}`}>Save conveyance</button>
  </form>`;
}
