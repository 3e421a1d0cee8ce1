// The commissioner's dashboard: a period and area picker, out-of-area totals with a 12-month trend (one request),
// the s136, capacity and equality tables, and CSV and Excel downloads of each report.
import { api, ApiError, connectEvents, dayText, el, loadCodes, readDate, showBanner, whoAmI, withCode } from "./common.js";

const app = document.getElementById("app");
const REPORTS = [["out-of-area", "Out-of-area placements"], ["s136", "Section 136 detentions"], ["capacity", "Capacity use"],
  ["equality", "Equality monitoring"]];
const state = { me: null, areas: new Map(), from: null, to: null, area: null, reports: {}, trend: [], loading: false };
const label = (key) => String(key).replaceAll("_", " ");
const byLabel = (set) => (code) => codes.label(set, code);  // a code's label; other keys ("any") in words
const iso = (d) => d.toISOString().slice(0, 10);

// The last complete calendar month: the period commissioners report on.
function lastCompleteMonth() {
  const now = new Date();
  const first = new Date(Date.UTC(now.getFullYear(), now.getMonth() - 1, 1));
  const last = new Date(Date.UTC(now.getFullYear(), now.getMonth(), 0));
  return [iso(first), iso(last)];
}

const query = (from, to, extra = "") => `from=${from}&to=${to}&area=${state.area}${extra}`;

// The out-of-area report and its trend first, drawn as soon as they come (the server is not shared with the
// other three meanwhile), then the s136, capacity and equality reports at once.
let loads = 0;
async function load() {
  const mine = ++loads; // a later choice wins over the answers to an earlier one
  const report = (path) => api(`/api/reports/${path}?${query(state.from, state.to)}`);
  Object.assign(state, { reports: {}, trend: [], loading: true });
  drawn.clear();
  render();
  try {
    const [oap, trend] = await Promise.all([report("out-of-area"), fetchTrend()]);
    if (mine !== loads) return;
    state.reports = { "out-of-area": oap };
    state.trend = trend.months.map((m) => ({ at: Date.parse(`${m.from}T00:00:00Z`) / 1000,
      bed_days: m.totals.bed_days, inappropriate: m.inappropriate.bed_days }));
    render();
    const rest = await Promise.all(REPORTS.slice(1).map(async ([path]) => [path, await report(path)]));
    if (mine !== loads) return;
    Object.assign(state.reports, Object.fromEntries(rest));
    showBanner("");
  } catch (e) {
    if (mine !== loads) return;
    showBanner(e instanceof ApiError ? `Reports: ${e.message}` : String(e));
  }
  state.loading = false;
  render();
}

// Bed days of out-of-area placements for each of the 12 months ending with the period's end: one audited
// request (GET /api/reports/trend), each month's figures as the out-of-area report gives them.
const month = (d) => d.toISOString().slice(0, 7);
function fetchTrend() {
  const end = new Date(`${state.to}T00:00:00Z`);
  const first = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() - 11, 1));
  return api(`/api/reports/trend?from=${month(first)}&to=${month(end)}&area=${state.area}`);
}

function drawTrend() {
  const holder = document.getElementById("trend");
  if (!holder || !state.trend.length) return;
  holder.replaceChildren();
  const width = Math.max(300, holder.clientWidth - 8);
  const data = [state.trend.map((t) => t.at), state.trend.map((t) => t.bed_days), state.trend.map((t) => t.inappropriate)];
  // uPlot is served by this app (static/vendor), never from a CDN.
  new window.uPlot({
    width, height: 220, title: "Out-of-area bed days by month",
    scales: { x: { time: true } },
    series: [{}, { label: "all OAP bed days", stroke: "#005eb8", width: 2 },
      { label: "inappropriate (reason 10)", stroke: "#a30d1b", width: 2, dash: [6, 4] }],
    axes: [{ values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleDateString("en-GB", { month: "short", year: "2-digit", timeZone: "Europe/London" })) }, {}],
  }, data, holder);
  holder.append(el("table", { class: "sr-only", "aria-label": "Out-of-area bed days by month" },
    el("tbody", {}, state.trend.map((t) => el("tr", {}, el("th", {}, new Date(t.at * 1000).toLocaleDateString("en-GB", { month: "long", year: "numeric" })),
      el("td", {}, t.bed_days))))));
}

// Each row is named by `name(key)`: the key in words, or a code's label (byLabel).
function keyValues(caption, object, name = label) {
  const rows = Object.entries(object || {}).filter(([, v]) => typeof v !== "object" || v === null);
  return el("table", {}, el("caption", {}, caption),
    el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, name(k)), el("td", { "data-metric": k }, format(v, k))))));
}

// `codeSets` names the code set of a column whose values are codes (a unit's kind, a reason): shown by label.
function listTable(caption, rows, columns, codeSets = {}) {
  if (!rows || !rows.length) return el("p", { class: "empty" }, `${caption}: none in this period.`);
  const cell = (r, c) => (codeSets[c] && r[c] !== null ? codes.label(codeSets[c], r[c]) : format(r[c], c));
  return el("table", {}, el("caption", {}, caption),
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, label(c))))),
    el("tbody", {}, rows.map((r) => el("tr", {}, columns.map((c) => el("td", {}, cell(r, c)))))));
}

function format(value, key = "") {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (key.endsWith("share") || key === "occupancy") return `${(value * 100).toFixed(1)}%`;
  if (key.includes("cost")) return value.toLocaleString("en-GB", { style: "currency", currency: "GBP" });
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function downloads(path) {
  return el("p", { class: "row-actions" },
    el("a", { href: `/api/reports/${path}?${query(state.from, state.to, "&format=csv")}`, download: "", class: "badge" }, "Download CSV"),
    el("a", { href: `/api/reports/${path}?${query(state.from, state.to, "&format=xlsx")}`, download: "", class: "badge" }, "Download Excel"));
}

function section(path, title, ...content) {
  return el("section", { class: "card", "aria-labelledby": `${path}-h`, "data-report": path },
    el("h2", { id: `${path}-h` }, title), downloads(path), el("div", { class: "kv-grid" }, ...content));
}

function picker() {
  // Days typed as "01 Nov 2026" whatever the browser's locale (a date input follows it), each one's
  // problem said beside it.
  const day = (id, date) => el("input", { type: "text", id, value: dayText(date), required: true, autocomplete: "off",
    placeholder: "01 Nov 2026" });
  const from = day("p-from", state.from), to = day("p-to", state.to);
  const area = el("select", { id: "p-area" }, state.me.areas.map((c) => el("option", { value: c }, state.areas.get(c)?.name || c)));
  area.value = state.area;
  const form = el("form", { class: "card grid", id: "period-form", "aria-label": "Period and area" },
    el("div", { class: "field" }, el("label", { for: "p-from" }, "From"), from),
    el("div", { class: "field" }, el("label", { for: "p-to" }, "To"), to),
    el("div", {}, el("label", { for: "p-area" }, "Home area"), area), el("div", {}, el("button", { type: "submit" }, "Show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const [start, end] = [[from, "From"], [to, "To"]].map(([input, label]) => {
      const read = readDate(input.value, label);
      input.parentElement.querySelector(".field-error")?.remove();
      input.toggleAttribute("aria-invalid", Boolean(read.error));
      if (read.error) {
        input.setAttribute("aria-describedby", `${input.id}-error`);
        input.after(el("p", { class: "error field-error", id: `${input.id}-error`, role: "alert" }, read.error));
      } else input.removeAttribute("aria-describedby");
      return read.date;
    });
    if (!start || !end) return;  // nothing is asked for
    Object.assign(state, { from: start, to: end, area: area.value });
    load();
  });
  return form;
}

// The picker is made once and kept (what is typed in it survives every redraw); below it, each report's
// section is made once per load, when its report arrives (a "Loading…" card until then), and kept.
let form = null;
const reportsHolder = el("div", { id: "reports" });
const drawn = new Map();

const SECTIONS = {
  "out-of-area": (oap) => section("out-of-area", "Out-of-area placements", keyValues("All out-of-area placements", oap.totals),
    keyValues("Inappropriate (reason 10)", oap.inappropriate), el("div", { id: "trend", class: "chart wide" }),
    listTable("By reason", oap.by_reason, ["reason", "description", "started", "bed_days", "cost"]),
    listTable("By receiving provider", oap.by_receiving_provider, ["name", "sector", "started", "bed_days", "cost"], { sector: "sectors" }),
    keyValues("Length of stay (nights)", oap.length_bands), keyValues("Distance from home (km)", oap.distance_bands)),
  s136: (s136) => section("s136", "Section 136 detentions", keyValues("Totals", s136.totals), keyValues("By place of safety", s136.by_place_of_safety),
    keyValues("Duration (hours)", s136.duration_hours), keyValues("Conveyance", s136.conveyance, byLabel("conveyance_modes")),
    keyValues("Ambulance response", s136.ambulance_response), keyValues("Outcomes", s136.outcomes, byLabel("outcomes")),
    listTable("Police vehicle reasons", s136.police_vehicle_reasons, Object.keys(s136.police_vehicle_reasons[0] || {}),
      { reason: "police_vehicle_reasons" })),
  capacity: (capacity) => section("capacity", "Capacity use", keyValues("Occupancy", capacity.occupancy),
    listTable("By unit", capacity.by_unit, ["name", "kind", "occupied_nights", "open_place_nights", "occupancy"], { kind: "kinds" }),
    keyValues("Hold outcomes", capacity.hold_outcomes), keyValues("Hold to arrival (minutes)", capacity.hold_to_arrival_minutes),
    keyValues("Unmet demand", capacity.unmet_demand), keyValues("Unmet demand by kind", capacity.unmet_demand_by_kind, byLabel("kinds"))),
  equality: (equality) => section("equality", "Equality monitoring", el("p", { class: "muted wide" }, "Counts of 1 to 7 are shown as *, others rounded to the nearest 5 (and a figure more hidden as * where needed), so that no one can be identified."),
    ["detentions", "placements"].flatMap((group) => [
      keyValues(`${label(group)} (${equality[group].total}) by ethnic category`, equality[group].by_ethnicity,
        (k) => (codes.has("ethnicities", k) ? withCode(codes.find("ethnicities", k)) : label(k))),
      el("div", {}, keyValues(`${label(group)} by sex`, equality[group].by_sex),
        keyValues(`${label(group)} by age band`, equality[group].by_age_band))])),
};

function waiting(path, title) {
  return el("section", { class: "card", "aria-busy": state.loading ? "true" : "false", "data-report": path },
    el("h2", {}, title), el("p", { class: "empty" }, state.loading ? "Loading…" : "Not shown: see the message above."));
}

function render() {
  if (!form) {
    form = picker();
    app.replaceChildren(form, reportsHolder);
  }
  if (!state.reports["out-of-area"] && !state.loading) {
    drawn.clear();
    reportsHolder.replaceChildren(el("p", { class: "empty" }, "No report to show for this choice."));
    reportsHolder.setAttribute("aria-busy", "false");
    return;
  }
  let fresh = false;
  const nodes = REPORTS.map(([path, title]) => {
    const report = state.reports[path];
    if (!report) return waiting(path, title);
    if (!drawn.has(path)) {
      drawn.set(path, SECTIONS[path](report));
      fresh ||= path === "out-of-area";
    }
    return drawn.get(path);
  });
  reportsHolder.replaceChildren(...nodes);
  reportsHolder.setAttribute("aria-busy", state.loading ? "true" : "false"); // tests wait for "false"
  if (fresh) drawTrend();
}

const [me, areas, codes] = await Promise.all([whoAmI(), api("/api/areas"), loadCodes()]); // at once: one round trip
state.me = me;
for (const area of areas) state.areas.set(area.code, area);
if (!state.me.areas.length) state.me.areas = [...state.areas.keys()];
[state.from, state.to] = lastCompleteMonth();
state.area = state.me.areas[0];
await load();
// Reports are history, not live figures; the stream only shows the connection is up.
connectEvents({ onEvent: () => {}, resync: () => {} });
