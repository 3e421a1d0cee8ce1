// Section 136 and 135 detentions at places that are not units (an emergency department, a police
// station, elsewhere), on the AMHP's page: recording one starts the episode's one 24-hour clock; its
// one extension (s136B) is recorded here or where the person is placed; a hold then continues it, or
// the detention is ended here with its outcome.
import { api, liveList, londonDateTime, londonTime, problemInWords, readLondonFields, serverNow } from "./common.js";
import { Confirm, Countdown, DateTimeField, Field, html, invalid, NO_PROBLEM, options, useProblem, useState } from "./view.js";

// The open detentions in the caller's areas. One recorded elsewhere (another AMHP's page) appears at
// once from its event and is then re-read; one ended goes. Any other event names the episode
// (`detention_id`): a known episode (an extension, a transfer onwards, a breach) is re-read, coalesced.
export function liveDetentions({ onChange }) {
  return liveList({
    read: async () => (await api("/api/s136-detentions")).filter((d) => !d.ended_at),
    apply: (items, frame) => {
      const e = frame.data ?? {};
      if (frame.type === "s136.ended") return items.filter((d) => d.id !== e.s136_detention_id);
      if (frame.type === "s136.recorded") {
        if (items.some((d) => d.id === e.s136_detention_id)) return items;
        return [{ id: e.s136_detention_id, detention_id: e.detention_id, legal_basis: e.legal_basis, place_type: e.place_type,
          place_name: e.place_name, person: e.person, detained_at: e.detained_at, deadline: e.s136_deadline, partial: true }, ...items];
      }
      return items.map((d) => (d.detention_id === e.detention_id ? { ...d, partial: true } : d));
    },
    onChange,
  });
}

// "ADM-1 at an emergency department (St Elsewhere), since 01 Dec 2026, 01:30".
export const detentionName = (d, codes) => `${d.person.ref} at ${codes.label("place_types", d.place_type).toLowerCase()}${
  d.place_name ? ` (${d.place_name})` : ""}, since ${londonDateTime(d.detained_at)}`;

// A clock's badge by the time left on the server's clock: red under 30 minutes, amber under 2 hours.
export function clockClass(deadline) {
  const ms = new Date(deadline).getTime() - serverNow();
  return ms < 30 * 60000 ? "badge bad" : ms < 2 * 3600000 ? "badge" : "badge ok";
}

const EXTENSION_LABELS = { hours: "Hours", authorised_by: "Authorised by (doctor)", reason: "Reason", note: "Note",
  superintendent: "Superintendent" };

// The longest extension of an episode's clock the Act allows (s136(2A)): the API refuses more.
const EXTENSION_MAX_HOURS = 12;

// The episode's one extension, up to 12 hours, for the person's condition only; at a police station a
// superintendent authorises it too. `path` is where it is recorded; onDone(answer) after it is.
export function ExtensionForm({ id, path, who, atPoliceStation, codes, onDone, onCancel }) {
  const [x, setX] = useState({ hours: "", authorised_by: "", reason: "", note: "", superintendent: "" });
  const [problem, setProblem] = useProblem();
  const set = (name) => (event) => setX({ ...x, [name]: event.currentTarget.value });
  const submit = async (event) => {
    event.preventDefault();
    setProblem(NO_PROBLEM);
    const body = { hours: x.hours === "" ? null : Number(x.hours), authorised_by: x.authorised_by.trim(), reason: x.reason };
    if (x.note.trim()) body.note = x.note.trim();
    if (atPoliceStation) body.superintendent = x.superintendent.trim();
    try {
      onDone(await api(path, { method: "POST", body }));
    } catch (e) {
      setProblem(problemInWords(e, { labels: EXTENSION_LABELS }));
    }
  };
  const f = problem.fields;
  const field = (name, label, control) => html`<${Field} id=${`${id}-${name}`} label=${label} error=${f[name]}>${control}<//>`;
  const attrs = (name) => ({ id: `${id}-${name}`, value: x[name], ...invalid(`${id}-${name}`, f[name]) });
  return html`<form class="confirm" aria-label=${`Extend the detention of ${who}`} onSubmit=${submit}>
    <p><strong>Extend the detention of ${who}</strong> (once, up to 12 hours, before the deadline)</p>
    <div class="grid">
      ${field("hours", "Hours (1 to 12)", html`<input type="number" min="1" max=${EXTENSION_MAX_HOURS} onInput=${set("hours")} ...${attrs("hours")} />`)}
      ${field("authorised_by", "Authorised by (doctor)", html`<input maxlength="120" onInput=${set("authorised_by")} ...${attrs("authorised_by")} />`)}
      ${field("reason", "Reason", html`<select onChange=${set("reason")} ...${attrs("reason")}>
        <option value="">choose…</option>${options(codes.extension_reasons)}</select>`)}
      ${atPoliceStation ? field("superintendent", "Superintendent", html`<input maxlength="120" onInput=${set("superintendent")}
        ...${attrs("superintendent")} />`) : null}
      ${field("note", "Note (optional)", html`<input maxlength="280" onInput=${set("note")} ...${attrs("note")} />`)}
    </div>
    ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
    <div class="row-actions"><button type="submit">Record the extension</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button></div>
  </form>`;
}

const END_LABELS = { outcome: "Outcome", ended_at: "Ended at" };

function DetentionCard({ d, codes, detentions, announce }) {
  const [extending, setExtending] = useState(false);
  const [ending, setEnding] = useState(false);
  const [endedAt, setEndedAt] = useState("");
  const [problem, setProblem] = useProblem();
  const done = (answer) => {
    setExtending(false);
    detentions.set(detentions.items.map((item) => (item.id === d.id ? answer : item)));
  };
  // Ended here, with its outcome: the episode's clock stops. A move to another place is not ended here
  // but by the hold (or detention) that continues it, so `transferred` is not offered.
  const end = async (outcome) => {
    setProblem(NO_PROBLEM);
    const times = readLondonFields({ ended_at: endedAt }, END_LABELS);
    if (times.fields.ended_at) return setProblem({ fields: times.fields, general: "" });  // nothing is sent
    try {
      await api(`/api/s136-detentions/${d.id}/end`, { method: "POST", body: { outcome, ...times.values } });
      detentions.set(detentions.items.filter((item) => item.id !== d.id));
      announce(`Detention ended: ${d.person.ref}, ${codes.label("outcomes", outcome).toLowerCase()}.`);
    } catch (e) {
      setProblem(problemInWords(e, { labels: END_LABELS }));
    }
  };
  const said = [problem.fields.outcome, problem.general].filter(Boolean).join(" ");
  return html`<article class="card" data-detention=${d.id}>
    <h3>${detentionName(d, codes)}</h3>
    <p>${codes.label("detention_bases", d.legal_basis)} · <span class=${clockClass(d.deadline)}><${Countdown} iso=${d.deadline} /></span> left
      · deadline ${londonTime(d.deadline)}${d.extension_hours ? ` · extended ${d.extension_hours} h (${d.extension_authorised_by})` : ""}</p>
    ${d.never_event_acknowledged ? html`<p class="warning">Never event: a child kept in a police station.</p>` : null}
    ${extending ? html`<${ExtensionForm} id=${`x-${d.id}`} path=${`/api/s136-detentions/${d.id}/extension`} who=${d.person.ref}
        atPoliceStation=${d.place_type === "police_station"} codes=${codes} onDone=${done} onCancel=${() => setExtending(false)} />`
      : html`<div class="row-actions">${d.extension_hours ? null
          : html`<button type="button" class="secondary" aria-label=${`Extend the detention of ${d.person.ref}`}
              onClick=${() => setExtending(true)}>Extend</button>`}
          <button type="button" aria-label=${`End the detention of ${d.person.ref}`} aria-expanded=${ending}
            onClick=${() => setEnding(true)}>End</button></div>`}
    ${ending ? html`<${Confirm} id=${`end-${d.id}`} question=${`End the detention of ${d.person.ref}? The clock stops.`}
      action="Yes, end the detention" choiceLabel="Outcome" choices=${codes.outcomes.filter((c) => c.code !== "transferred")}
      missing="Choose the outcome of the detention first." onConfirm=${end} onCancel=${() => setEnding(false)}>
      <${DateTimeField} id=${`end-${d.id}-at`} label="Ended at (if earlier)" value=${endedAt} onInput=${setEndedAt}
        error=${problem.fields.ended_at} /><//>` : null}
    ${said ? html`<p class="error" role="alert">${said}</p>` : null}
  </article>`;
}

const DETENTION_LABELS = { place_type: "Place", place_name: "Name of the place", legal_basis: "Detained under",
  detained_at: "Clock started", "person.ref": "Person reference", "person.age": "Age", "person.sex": "Sex",
  "person.home_area": "Home area", police_station_criteria: "Police station criteria",
  authorising_inspector: "Authorising inspector", never_event_acknowledged: "Never event", note: "What happened" };
const NO_DETENTION = { place_type: "", place_name: "", legal_basis: "s136", detained_at: "", ref: "", age: "", sex: "", home_area: "",
  criteria: [], authorising_inspector: "", never_event_acknowledged: false, note: "" };

function DetentionForm({ codes, areas, detentions, announce }) {
  const [v, setV] = useState({ ...NO_DETENTION, home_area: areas[0]?.code || "" });
  const [problem, setProblem] = useProblem();
  const set = (name) => (event) => setV({ ...v, [name]: event.currentTarget.type === "checkbox" ? event.currentTarget.checked : event.currentTarget.value });
  const tick = (code) => (event) => setV({ ...v, criteria: event.currentTarget.checked ? [...v.criteria, code] : v.criteria.filter((c) => c !== code) });
  const policeStation = v.place_type === "police_station";
  const child = v.age !== "" && Number(v.age) < 18;
  const submit = async (event) => {
    event.preventDefault();
    setProblem(NO_PROBLEM);
    const times = readLondonFields({ detained_at: v.detained_at }, DETENTION_LABELS);
    if (!v.detained_at.trim()) times.fields.detained_at = `Clock started must be filled in: when the person arrived, like 03 Dec 2026, 14:05.`;
    if (Object.keys(times.fields).length) return setProblem({ fields: times.fields, general: "" });  // nothing is sent
    const body = { place_type: v.place_type, legal_basis: v.legal_basis, ...times.values,
      person: { ref: v.ref.trim(), age: v.age === "" ? null : Number(v.age), sex: v.sex, home_area: v.home_area } };
    if (v.place_name.trim()) body.place_name = v.place_name.trim();
    if (policeStation && !child) {
      body.police_station_criteria = v.criteria;
      if (v.authorising_inspector.trim()) body.authorising_inspector = v.authorising_inspector.trim();
    }
    if (policeStation && child && v.never_event_acknowledged) body.never_event_acknowledged = true;
    if (v.note.trim()) body.note = v.note.trim();
    try {
      const recorded = await api("/api/s136-detentions", { method: "POST", body });
      detentions.set([recorded, ...detentions.items.filter((d) => d.id !== recorded.id)]);
      setV({ ...NO_DETENTION, home_area: v.home_area });
      announce(`Recorded: ${detentionName(recorded, codes)}. Deadline ${londonTime(recorded.deadline)}.`);
    } catch (e) {
      setProblem(problemInWords(e, { labels: DETENTION_LABELS }));
    }
  };
  const f = problem.fields;
  const attrs = (name, id) => ({ id, value: v[name], ...invalid(id, f[name]) });
  return html`<form class="card" id="detention-form" aria-labelledby="detention-h" onSubmit=${submit}>
    <h3 id="detention-h">Record a detention at an emergency department, police station or other place</h3>
    <div class="grid">
      <${Field} id="d-place" label="Place" error=${f.place_type}><select onChange=${set("place_type")} ...${attrs("place_type", "d-place")}>
        <option value="">choose…</option>${options(codes.place_types)}</select><//>
      <${Field} id="d-name" label="Name of the place" error=${f.place_name}>
        <input maxlength="200" placeholder="e.g. Bristol Royal Infirmary ED" onInput=${set("place_name")} ...${attrs("place_name", "d-name")} /><//>
      <${Field} id="d-basis" label="Detained under" error=${f.legal_basis}><select onChange=${set("legal_basis")} ...${attrs("legal_basis", "d-basis")}>
        ${options(codes.detention_bases)}</select><//>
      <${DateTimeField} id="d-at" label="Clock started (arrival at the place)" value=${v.detained_at}
        onInput=${(text) => setV({ ...v, detained_at: text })} error=${f.detained_at} />
      <${Field} id="d-ref" label="Person reference" error=${f["person.ref"]}>
        <input maxlength="40" placeholder="your team's reference, never an NHS number" onInput=${set("ref")} ...${attrs("ref", "d-ref")} /><//>
      <${Field} id="d-age" label="Age" error=${f["person.age"]}>
        <input type="number" min="0" max="120" onInput=${set("age")} ...${attrs("age", "d-age")} /><//>
      <${Field} id="d-sex" label="Sex" error=${f["person.sex"]}><select onChange=${set("sex")} ...${attrs("sex", "d-sex")}>
        <option value="">choose…</option>${options(codes.person_sexes)}</select><//>
      <${Field} id="d-home" label="Home area" error=${f["person.home_area"]}><select onChange=${set("home_area")} ...${attrs("home_area", "d-home")}>
        ${areas.map((a) => html`<option key=${a.code} value=${a.code}>${a.name}</option>`)}</select><//>
    </div>
    ${policeStation && !child ? html`<fieldset><legend>Police station (Places of Safety Regulations 2017): all must hold</legend>
      ${codes.police_station_criteria.map((c) => html`<label key=${c.code} class="check"><input type="checkbox" style="width:auto"
        checked=${v.criteria.includes(c.code)} onChange=${tick(c.code)} /> ${c.label}</label>`)}
      ${f.police_station_criteria ? html`<p class="error field-error" role="alert">${f.police_station_criteria}</p>` : null}
      <${Field} id="d-inspector" label="Authorising inspector" error=${f.authorising_inspector}>
        <input maxlength="120" onInput=${set("authorising_inspector")} ...${attrs("authorising_inspector", "d-inspector")} /><//>
    </fieldset>` : null}
    ${policeStation && child ? html`<fieldset><legend>A child in a police station</legend>
      <p class="warning">A police station may never be a place of safety for a person under 18. Record it only if it has happened:
        it is a never event, and admins are alerted.</p>
      <label class="check"><input id="d-never" type="checkbox" style="width:auto" checked=${v.never_event_acknowledged}
        onChange=${set("never_event_acknowledged")} /> It has happened: record it as a never event</label>
      ${f.never_event_acknowledged ? html`<p class="error field-error" role="alert">${f.never_event_acknowledged}</p>` : null}
    </fieldset>` : null}
    <${Field} id="d-note" label=${policeStation && child ? "What happened (required)" : "Note (optional)"} error=${f.note}>
      <input maxlength="280" onInput=${set("note")} ...${attrs("note", "d-note")} /><//>
    ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
    <button type="submit">Record detention</button>
  </form>`;
}

// The AMHP page's section: the open detentions with their clocks, and the form to record one.
export function DetentionsSection({ codes, areas, detentions, announce }) {
  return html`<section class="card" aria-labelledby="detentions-h"><h2 id="detentions-h">Detentions elsewhere (s136, s135)</h2>
    ${detentions.items.length ? detentions.items.map((d) => html`<${DetentionCard} key=${d.id} d=${d} codes=${codes} detentions=${detentions}
      announce=${announce} />`)
      : html`<p class="empty">No one is detained at an emergency department, police station or other place in your areas.</p>`}
    <${DetentionForm} codes=${codes} areas=${areas} detentions=${detentions} announce=${announce} />
  </section>`;
}
