// The regional picture (GET /api/region/status): one region's places by kind, empty 136 suites, stale
// units, providers at OPEL 3-4, people waiting in an emergency department under s136 and out-of-area
// placements, as a sitrep, live. Every public event (a unit's figures, a provider's level), and a detention
// recorded or ended elsewhere (heard by those who see people), re-reads the status, coalesced: at most one
// read in flight and one more after it, so a burst costs two reads. The minutes waited move on with a read
// each minute. Drawn with Preact (view.js).
import { api, connectEvents, loadCodes, londonTime, problemInWords, whoAmI } from "./common.js";
import { opelInWords } from "./escalation.js";
import { html, mount, plural } from "./view.js";

const codes = await loadCodes();
const app = document.getElementById("app");
const state = { regions: [], region: null, status: null, problem: "" };
let redraw = () => {};
const LIVE_TYPES = new Set(["unit.availability", "provider.escalation", "s136.recorded", "s136.ended"]);

let running = null, again = false;
function refresh() {
  if (!state.region) return Promise.resolve();
  if (running) {
    again = true;
    return running;
  }
  running = (async () => {
    do {
      again = false;
      const region = state.region;
      try {
        const status = await api(`/api/region/status?region=${encodeURIComponent(region)}`);
        if (region === state.region) Object.assign(state, { status, problem: "" });
      } catch (e) {
        state.problem = problemInWords(e).general;
      }
      redraw();
    } while (again);
  })().finally(() => { running = null; });
  return running;
}

function choose(region) {
  Object.assign(state, { region, status: null });
  redraw();
  refresh();
}

const Figure = ({ name, label, value, tone }) => html`<div class="card figure">
  <div class="muted">${label}</div>
  <div class=${`figure-value ${tone || ""}`} data-total=${name}>${value ?? "—"}</div>
</div>`;

function Totals({ totals }) {
  const waiting = totals.waiting_in_ed_s136;
  return html`<section aria-label="Totals" class="grid" style="align-items: stretch">
    <${Figure} name="available" label="Places available" value=${`${totals.available} of ${totals.open_places}`} />
    <${Figure} name="held" label="Held" value=${totals.held} />
    <${Figure} name="occupied" label="Occupied" value=${totals.occupied} />
    <${Figure} name="s136_suites_empty" label="136 suites empty" value=${totals.s136_suites_empty} />
    <${Figure} name="stale_units" label="Units with stale figures" value=${totals.stale_units} tone=${totals.stale_units ? "stale" : ""} />
    <${Figure} name="providers_at_level_3_4" label="Providers at OPEL 3-4" value=${totals.providers_at_level_3_4}
      tone=${totals.providers_at_level_3_4 ? "warning" : ""} />
    <${Figure} name="waiting_in_ed_s136" label="Waiting in an ED under s136"
      value=${waiting ? `${waiting} (longest ${plural(totals.longest_ed_wait_minutes, "minute")})` : 0} tone=${waiting ? "warning" : ""} />
    <${Figure} name="out_of_area_active" label="Out-of-area placements" value=${totals.out_of_area_active} />
  </section>`;
}

function Places({ rows }) {
  return html`<section class="card" aria-labelledby="places-h"><h2 id="places-h">Places by kind</h2>
    <table><thead><tr><th scope="col">Kind</th><th scope="col">Units</th><th scope="col">Open</th><th scope="col">Held</th>
      <th scope="col">Occupied</th><th scope="col">Available</th><th scope="col">Closed units</th><th scope="col">Stale units</th></tr></thead>
    <tbody>${rows.filter((r) => r.units).map((r) => html`<tr key=${r.kind} data-kind=${r.kind}>
      <th scope="row">${codes.label("kinds", r.kind)}</th>
      <td data-field="units">${r.units}</td><td data-field="open_places">${r.open_places}</td><td data-field="held">${r.held}</td>
      <td data-field="occupied">${r.occupied}</td><td data-field="available">${r.available}</td>
      <td data-field="closed_units">${r.closed_units}</td>
      <td data-field="stale_units" class=${r.stale_units ? "stale" : ""}>${r.stale_units}</td>
    </tr>`)}</tbody></table>
  </section>`;
}

function Escalated({ providers, stale }) {
  return html`<section class="card" aria-labelledby="opel-h"><h2 id="opel-h">Providers at OPEL 3-4</h2>
    ${stale ? html`<p class="stale">${plural(stale, "provider's level", "providers' levels")} in this region not reviewed recently (stale)</p>` : null}
    ${providers.length ? html`<ul>${providers.map((p) => html`<li key=${p.provider_id} data-provider=${p.provider_id}>
      ${p.name}: <span class="badge bad">${opelInWords(p.escalation_level)}</span> declared ${londonTime(p.escalation_at)}
      ${p.escalation_stale ? html` <span class="stale">(stale)</span>` : null}
    </li>`)}</ul>` : html`<p class="empty">None</p>`}
  </section>`;
}

function Waiting({ waiting }) {
  return html`<section class="card" aria-labelledby="ed-h"><h2 id="ed-h">Waiting in an emergency department under s136</h2>
    ${waiting.length ? html`<table><thead><tr><th scope="col">Home area</th><th scope="col">Waiting</th><th scope="col">Deadline</th></tr></thead>
      <tbody>${waiting.map((w) => html`<tr key=${w.n}><td>${w.home_area}</td>
        <td>${plural(w.waiting_minutes, "minute")}</td>
        <td class=${w.breached ? "error" : ""}>${londonTime(w.deadline)}${w.breached ? " (breached)" : ""}</td></tr>`)}</tbody></table>`
      : html`<p class="empty">No one</p>`}
  </section>`;
}

function StaleUnits({ units }) {
  if (!units.length) return null;
  return html`<section class="card" aria-labelledby="stale-h"><h2 id="stale-h">Units with stale figures</h2>
    <ul>${units.map((u) => html`<li key=${u.unit_id}>${u.name}: last confirmed ${londonTime(u.last_confirmed_at)}</li>`)}</ul>
  </section>`;
}

function App() {
  const s = state.status;
  const csv = `/api/region/status?region=${encodeURIComponent(state.region || "")}&format=csv`;
  return html`<div class="section-head">
      <h1>Region${s ? html` <span class="muted">at ${londonTime(s.at)}</span>` : null}</h1>
      <div class="row-actions">
        <label for="region">Region</label>
        <select id="region" value=${state.region || ""} onChange=${(e) => choose(e.target.value)}>
          ${state.regions.map((r) => html`<option key=${r} value=${r}>${r}</option>`)}
        </select>
        ${state.region ? html`<a class="badge" href=${csv} download>Download CSV</a>` : null}
      </div>
    </div>
    ${state.problem ? html`<p class="error" role="alert">${state.problem}</p>` : null}
    ${!state.regions.length ? html`<p class="empty">No region is in your areas.</p>` : null}
    ${s ? html`<${Totals} totals=${s.totals} /><${Places} rows=${s.places_by_kind} />
      <${Escalated} providers=${s.providers_at_level_3_4} stale=${s.totals.escalations_stale} /><${Waiting} waiting=${s.waiting_in_ed_s136} />
      <${StaleUnits} units=${s.stale_units} />` : state.regions.length ? html`<p class="empty">Loading…</p>` : null}`;
}

const [me, areas] = await Promise.all([whoAmI(), api("/api/areas")]);
// An admin sees every region; a commissioner those of their own areas.
const own = me.role === "admin" ? areas : areas.filter((a) => me.areas.includes(a.code));
state.regions = [...new Set(own.map((a) => a.region).filter(Boolean))].sort();
state.region = state.regions[0] || null;
redraw = mount(app, App);
connectEvents({ onEvent: (frame) => { if (LIVE_TYPES.has(frame.type)) refresh(); }, resync: refresh });
setInterval(refresh, 60_000);
