// The admin's pages: users, providers, units, areas and crisis alternatives, each a list with a search box and a form to add
// or change one. Lists are drawn from `state`, so a redraw (a reconnection's re-read, a live figure) keeps
// an open confirmation; forms live in their own slot and are never redrawn under someone typing. Problems
// from the API are shown next to the field they name, in words (never msgspec's "Expected `int`").
import { api, ApiError, connectEvents, el, loadCodes, londonTime, showBanner, whoAmI } from "./common.js";

const codes = await loadCodes();
const app = document.getElementById("app");
const state = {
  users: [], providers: [], units: [], areas: [], alternatives: [],
  q: { users: "", providers: "", units: "", areas: "", alternatives: "" },
  confirm: null, // { section, key, action }: the one destructive step waiting for "yes"
  errors: {}, // a list item's last failure, by `${section}:${key}`
  link: null, // the one-time link just made: shown once, until "Done"
  forms: {}, // the open form of each section
};
const slots = {};

const byName = (a, b) => a.name.localeCompare(b.name);
const providerName = (id) => state.providers.find((p) => p.id === id)?.name ?? id;
const areaName = (code) => state.areas.find((a) => a.code === code)?.name ?? code;
const userName = (u) => (u.display_name ? `${u.display_name} (${u.username})` : u.username);
const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

// --- what each section edits -------------------------------------------------------------------------

const LAT = { type: "number", step: "any", inputmode: "decimal", required: true,
  hint: "Enter a latitude between 49 and 61 (in the UK), like 51.4545." };
const LON = { type: "number", step: "any", inputmode: "decimal", required: true,
  hint: "Enter a longitude between -9 and 2.5 (in the UK), like -2.5879." };
const AGE = { type: "number", step: "1", min: "0", max: "120", hint: "Enter an age from 0 to 120." };
const selectOf = (list, text = (c) => c.label) => list.map((c) => [c.code, text(c)]);
const activeAreas = () => [...state.areas].filter((a) => a.active).sort(byName);

const FIELDS = {
  users: () => [
    { name: "username", label: "Username", createOnly: true, required: true, autocomplete: "off",
      hint: "Use 2 to 80 lower-case letters, digits, dots, hyphens or underscores, starting with a letter or digit." },
    { name: "display_name", label: "Full name", nullable: true, autocomplete: "off", hint: "Enter a name of up to 120 characters." },
    { name: "email", label: "E-mail", type: "email", nullable: true, autocomplete: "off",
      hint: "Enter an e-mail address like name@example.nhs.uk." },
    { name: "oidc_subject", label: "Single sign-on subject (if e-mail is not enough)", nullable: true, autocomplete: "off",
      hint: "Enter the person's identifier at the sign-in provider (the ID token's sub), up to 255 characters." },
    { name: "role", label: "Role", type: "select", required: true, placeholder: "Choose a role",
      options: () => selectOf(codes.roles) },
    { name: "provider_id", label: "Provider (bed managers only)", type: "select", nullable: true, placeholder: "No provider",
      options: () => [...state.providers].sort(byName).map((p) => [p.id, p.name]), showIf: (v) => roleScope(v.role) === "provider" },
    { name: "areas", label: "Areas they work for (AMHP, conveyance, commissioner)", type: "areas",
      showIf: (v) => roleScope(v.role) === "areas" },
  ],
  providers: () => [
    { name: "name", label: "Name", required: true, hint: "Enter a name of up to 200 characters." },
    { name: "sector", label: "Sector", type: "select", required: true, placeholder: "Choose a sector", options: () => selectOf(codes.sectors) },
    { name: "ods_code", label: "ODS code", nullable: true, autocomplete: "off",
      hint: "An ODS code is 3 to 10 capital letters or digits, like RVN." },
  ],
  units: () => [
    { name: "name", label: "Name", required: true, hint: "Enter a name of up to 200 characters." },
    { name: "code", label: "Code (optional)", nullable: true, autocomplete: "off",
      hint: "A unit code is up to 20 letters, digits, dots, hyphens or underscores." },
    { name: "kind", label: "Kind", type: "select", required: true, placeholder: "Choose a kind", options: () => selectOf(codes.kinds) },
    { name: "provider_id", label: "Provider", type: "select", required: true, placeholder: "Choose a provider",
      options: () => [...state.providers].sort(byName).map((p) => [p.id, p.name]) },
    { name: "area_code", label: "Area it is in", type: "select", required: true, placeholder: "Choose an area",
      options: (item) => activeAreas().concat(state.areas.filter((a) => !a.active && a.code === item?.area_code))
        .map((a) => [a.code, `${a.name} (${a.code})${a.active ? "" : ", retired"}`]) },
    { name: "lat", label: "Latitude", ...LAT },
    { name: "lon", label: "Longitude", ...LON },
    { name: "postcode", label: "Postcode", nullable: true, autocomplete: "off", hint: "A postcode has at most 10 characters." },
    { name: "sex", label: "Takes", type: "select", options: () => selectOf(codes.unit_sexes) },
    { name: "min_age", label: "Minimum age", ...AGE, fallback: 18 },
    { name: "max_age", label: "Maximum age (optional)", ...AGE, nullable: true },
    { name: "max_stay_days", label: "Maximum stay in days (optional)", type: "number", step: "1", min: "1", nullable: true,
      hint: "Enter a number of days from 1 to 3650, or leave it empty." },
    { name: "daily_cost", label: "Daily cost (£)", type: "number", step: "0.01", min: "0", inputmode: "decimal", fallback: 0,
      hint: "Enter a cost in pounds from 0 to 100,000." },
    { name: "mother_and_baby", label: "Mother and baby unit", type: "checkbox" },
    { name: "accepts_intoxicated", label: "Accepts people who are intoxicated", type: "checkbox" },
    { name: "accepts_detained", label: "Accepts people detained under the Mental Health Act", type: "checkbox" },
    { name: "accepts_from_areas", label: "Takes people from (none ticked: from anywhere)", type: "areas" },
    { name: "refused_areas", label: "Refuses people from", type: "areas" },
    { name: "local_to_areas", label: "Local to (a placement from elsewhere is out of area)", type: "areas" },
  ],
  areas: () => [
    { name: "code", label: "ONS code", createOnly: true, required: true, autocomplete: "off",
      hint: "An ONS area code is a capital letter and 8 digits, like E06000023." },
    { name: "name", label: "Name", required: true, hint: "Enter a name of up to 200 characters." },
    { name: "lat", label: "Centre latitude", ...LAT },
    { name: "lon", label: "Centre longitude", ...LON },
    { name: "region", label: "Region", hint: "A region has at most 80 characters." },
  ],
  alternatives: () => [
    { name: "name", label: "Name", required: true, hint: "Enter a name of up to 200 characters." },
    { name: "code", label: "Code (optional)", nullable: true, autocomplete: "off",
      hint: "A code is up to 20 letters, digits, dots, hyphens or underscores." },
    { name: "kind", label: "Kind", type: "select", required: true, placeholder: "Choose a kind",
      options: () => selectOf(codes.alternative_kinds) },
    { name: "areas", label: "Areas whose people it serves", type: "areas", hint: "Tick at least one area it serves." },
    { name: "min_age", label: "Minimum age", ...AGE, fallback: 0 },
    { name: "max_age", label: "Maximum age (optional)", ...AGE, nullable: true },
    { name: "opening_hours", label: "Opening hours (UK time, 24-hour clock)", type: "hours",
      hint: "Enter each time as HH:MM on the 24-hour clock, like 09:00 or 18:30." },
    { name: "how_to_refer", label: "How to refer", required: true,
      hint: "Say how to refer someone, in up to 2,000 characters." },
    { name: "phone", label: "Phone (optional)", type: "tel", nullable: true, autocomplete: "off",
      hint: "A phone number is 3 to 30 digits, spaces, +, brackets or hyphens, like 0117 496 0101." },
    { name: "lat", label: "Latitude (optional: none for a phone line)", ...LAT, required: false, nullable: true },
    { name: "lon", label: "Longitude (optional: none for a phone line)", ...LON, required: false, nullable: true },
  ],
};

const SECTIONS = {
  users: {
    title: "Users", noun: "user", add: "Add a user", path: "/api/admin/users", serverSearch: true,
    search: "Search users by username, name or e-mail",
    about: "A new user has no password: they set one with the one-time link shown when you add them.",
    key: (u) => u.username, name: userName, url: (u) => `/api/admin/users/${encodeURIComponent(u.username)}`,
  },
  providers: {
    title: "Providers", noun: "provider", add: "Add a provider", path: "/api/admin/providers",
    search: "Search providers by name, sector or ODS code",
    about: "The NHS trusts, private hospitals and voluntary organisations that run units.",
    key: (p) => p.id, name: (p) => p.name, url: (p) => `/api/admin/providers/${encodeURIComponent(p.id)}`,
    match: (p, q) => [p.name, p.ods_code, codes.label("sectors", p.sector)].some((s) => (s || "").toLowerCase().includes(q)),
  },
  units: {
    title: "Units", noun: "unit", add: "Add a unit", path: "/api/admin/units", serverSearch: true,
    search: "Search units by name or code",
    about: "A new unit starts closed with no places: its provider's bed managers open it and declare its places.",
    key: (u) => u.id, name: (u) => u.name, url: (u) => `/api/admin/units/${encodeURIComponent(u.id)}`,
  },
  areas: {
    title: "Areas", noun: "area", add: "Add an area", path: "/api/admin/areas",
    search: "Search areas by name, ONS code or region",
    about: "Local authority areas by ONS code. A retired area keeps its history and reports.",
    key: (a) => a.code, name: (a) => a.name, url: (a) => `/api/admin/areas/${encodeURIComponent(a.code)}`,
    match: (a, q) => [a.name, a.code, a.region].some((s) => (s || "").toLowerCase().includes(q)),
  },
  alternatives: {
    title: "Crisis alternatives", noun: "alternative", add: "Add an alternative", path: "/api/admin/alternatives",
    search: "Search alternatives by name, code, kind or area",
    about: "Help in a crisis that is not a bed (safe havens, crisis lines, teams): offered to an AMHP whose search finds nothing free, while open.",
    key: (a) => a.id, name: (a) => a.name, url: (a) => `/api/admin/alternatives/${encodeURIComponent(a.id)}`,
    match: (a, q) => [a.name, a.code, codes.label("alternative_kinds", a.kind), ...a.areas.map(areaName)]
      .some((s) => (s || "").toLowerCase().includes(q)),
  },
};

// --- problems in words ---------------------------------------------------------------------------------

const PLAIN = [
  [/max_age is below min_age/, "The maximum age must not be below the minimum age."],
  [/cannot be both accepted and refused: (.*)/, (m) => `An area cannot be both taken from and refused: ${names(m[1])}.`],
  [/no active area with code (.*)/, (m) => `${names(m[1])} is not an active area.`],
  [/a bed manager belongs to a provider/, "Choose the provider this bed manager works for."],
  [/only a bed manager belongs to a provider/, "Only a bed manager belongs to a provider."],
  [/needs the areas they work for/, "Tick at least one area this user works for."],
  [/has no areas/, "This role works for no particular area: untick the areas."],
  [/another \w+ already has this (\w+)/, (m, spec) => `Another ${spec?.noun || "one"} already has this ${label(m[1], spec).toLowerCase()}.`],
  [/already exists/, "There is already an area with this ONS code."],
  [/may not deactivate or demote themselves/, "You cannot deactivate or demote yourself: another admin must do it."],
  [/the user is deactivated/, "Reactivate this user before giving them a new link."],
  [/no provider with id/, "Choose a provider from the list."],
  [/no area with code/, "Choose an area from the list."],
  [/closes as it opens/, "It closes as it opens: for all day, choose “Open 24 hours”."],
  [/24:00 only closes/, "Hours open by 23:59 at the latest: 24:00 is only a closing time."],
  [/a location needs both lat and lon/, "Enter both a latitude and a longitude, or neither (a phone line has no place)."],
];
const names = (list) => list.split(", ").map((c) => `${areaName(c)} (${c})`).join(", ");
const label = (field, ctx) => ctx?.specs?.find((s) => s.name === field)?.label ?? field.replaceAll("_", " ");

// The first part of a problem's field ("areas.0" is about "areas").
const fieldOf = (field) => String(field || "").split(".")[0];

function plain(error, ctx) {
  if (!(error instanceof ApiError)) return "The server could not be reached. Check your connection and try again: nothing you typed is lost.";
  const problem = error.problem || {};
  const field = fieldOf(error.field);
  const spec = ctx?.specs?.find((s) => s.name === field);
  if (error.status === 403) return "You are not allowed to do this. Your session may have ended: log in again.";
  if (error.status === 429 || error.status === 503) return "The service is busy. Try again in a moment.";
  if (error.status === 404) return "This is no longer there: someone may have changed it. Reload the page.";
  if (String(problem.type || "").endsWith("/validation-error")) {
    return spec?.hint || (spec ? `Check the ${spec.label.toLowerCase()}.` : "Check the form: something in it could not be read.");
  }
  const detail = String(problem.detail || error.message || "");
  for (const [pattern, text] of PLAIN) {
    const match = detail.match(pattern);
    if (match) return typeof text === "function" ? text(match, { ...ctx, noun: ctx?.noun }) : text;
  }
  if (error.status >= 500) return "Something went wrong on the server. Try again in a moment.";
  return `${capitalise(detail.replace(/\b[a-z]+(?:_[a-z]+)+\b/g, (f) => label(f, ctx).toLowerCase()))}.`.replace(/\.\.$/, ".");
}

// --- opening hours: per weekday, as the API takes them (capacity/alternatives/hours.py) ------------------
// Times are typed as HH:MM on the 24-hour clock whatever the browser's locale (a time input would show
// 6:00 PM in some); hours that close at or before they open run past midnight, so 18:00 to 00:00 is the
// evening. "Open 24 hours" is 00:00 to 24:00; bank holidays keep the weekday's hours unless told otherwise.

const DAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"], ["fri", "Friday"],
  ["sat", "Saturday"], ["sun", "Sunday"]];
const BANK = "bank_holidays";
const ALL_DAY = { opens: "00:00", closes: "24:00" };
const allDay = (intervals) => intervals?.length === 1 && intervals[0].opens === ALL_DAY.opens && intervals[0].closes === ALL_DAY.closes;
const always = (hours) => DAYS.every(([day]) => allDay(hours[day])) && (hours[BANK] == null || allDay(hours[BANK]));
const HOUR_MODES = [["hours", "Open at these hours"], ["closed", "Closed"], ["day", "Open 24 hours"]];
const HOURS = new WeakMap(); // an hours control's node -> { read, mark, clear, invalid }
// "9:30" is meant as 09:30; anything else goes as typed, for the API to say what is wrong with it.
const tidyTime = (text) => (/^\d:\d\d$/.test(text.trim()) ? `0${text.trim()}` : text.trim());

function hoursRow(id, day, name, intervals) {
  const rowId = `${id}-${day}`;
  const modes = day === BANK ? [["weekday", "Same as the weekday"], ...HOUR_MODES] : HOUR_MODES;
  const mode = el("select", { id: `${rowId}-mode`, "aria-describedby": `${rowId}-error`, style: "width:auto" },
    modes.map(([value, text]) => el("option", { value }, text)));
  mode.value = intervals === null ? "weekday" : !intervals.length ? "closed" : allDay(intervals) ? "day" : "hours";
  const list = el("div");
  const error = el("p", { class: "error", id: `${rowId}-error`, hidden: true });
  const relabel = () => [...list.children].forEach((row, n, all) => {
    const which = all.length > 1 ? ` (hours ${n + 1})` : "";
    row.querySelector("[data-time=opens]").setAttribute("aria-label", `${name}${which}: opens at`);
    row.querySelector("[data-time=closes]").setAttribute("aria-label", `${name}${which}: closes at`);
    row.querySelector("button").setAttribute("aria-label", `Remove ${name}'s hours${which}`);
    row.querySelector("button").hidden = all.length === 1;
  });
  const time = (which, value) => el("input", { type: "text", inputmode: "numeric", maxlength: "5", placeholder: "HH:MM",
    autocomplete: "off", value, "data-time": which, "aria-describedby": `${rowId}-error`, style: "width:6rem" });
  const addInterval = (interval) => {
    const row = el("div", { class: "row-actions", style: "align-items:center;margin:.2rem 0" },
      time("opens", interval.opens), el("span", {}, "to"), time("closes", interval.closes),
      el("button", { type: "button", class: "secondary", onclick: () => { row.remove(); relabel(); } }, "Remove"));
    list.append(row);
    relabel();
    return row;
  };
  const add = el("button", { type: "button", class: "secondary", "aria-label": `Add more hours on ${name}`,
    onclick: () => addInterval({ opens: "", closes: "" }).querySelector("input").focus() }, "Add hours");
  const times = el("div", {}, list, add);
  const sync = () => {
    times.hidden = mode.value !== "hours";
    if (!times.hidden && !list.children.length) addInterval({ opens: "", closes: "" });
  };
  for (const interval of mode.value === "hours" ? intervals : []) addInterval(interval);
  mode.addEventListener("change", sync);
  sync();
  const node = el("div", { "data-day": day, style: "padding:.3rem 0;border-bottom:1px solid var(--line)" },
    el("label", { for: mode.id }, name), mode, times, error);
  const read = () => ({
    weekday: null, closed: [], day: [{ ...ALL_DAY }],
    hours: [...list.children].map((row) => ({ opens: tidyTime(row.querySelector("[data-time=opens]").value),
      closes: tidyTime(row.querySelector("[data-time=closes]").value) })),
  })[mode.value];
  // `path`: the rest of the problem's field after the day ("0.opens"): the time it names, else the day.
  const mark = ([index, which], text) => {
    const target = (index !== undefined && which && list.children[index]?.querySelector(`[data-time=${which}]`)) || mode;
    target.setAttribute("aria-invalid", "true");
    error.textContent = text;
    error.hidden = false;
    return target;
  };
  const clear = () => {
    error.hidden = true;
    error.textContent = "";
    for (const control of node.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  };
  return { day, node, read, mark, clear };
}

function hoursControl(id, hours) {
  const rows = [...DAYS, [BANK, "Bank holidays"]].map(([day, name]) =>
    hoursRow(id, day, name, day === BANK ? hours?.[BANK] ?? null : hours?.[day] ?? []));
  const everyHour = el("input", { type: "checkbox", id: `${id}-always`, checked: Boolean(hours && always(hours)) });
  const days = el("div", {}, rows.map((row) => row.node));
  const sync = () => { days.hidden = everyHour.checked; };
  everyHour.addEventListener("change", sync);
  sync();
  const node = el("div", {}, el("label", { for: everyHour.id, class: "check" }, everyHour, " Open 24 hours a day, every day (24/7)"), days);
  HOURS.set(node, {
    read: () => (everyHour.checked
      ? { ...Object.fromEntries(DAYS.map(([day]) => [day, [{ ...ALL_DAY }]])), [BANK]: null }
      : Object.fromEntries(rows.map((row) => [row.day, row.read()]))),
    // A problem's field is "opening_hours.mon.0.opens" (or "...mon[0]..."): shown by that day's time.
    mark: (field, text) => {
      const [, day, ...rest] = String(field || "").replace(/\[(\d+)\]/g, ".$1").split(".");
      const row = rows.find((r) => r.day === day);
      if (!row) return null;
      everyHour.checked = false;
      sync();
      return row.mark(rest, text);
    },
    clear: () => rows.forEach((row) => row.clear()),
    invalid: () => node.querySelector("[aria-invalid=true]"),
  });
  return node;
}

// "Mon–Thu 18:00–23:00; Fri, Sat 18:00–02:00; Sun closed; bank holidays closed", or "open 24/7".
function hoursInWords(hours) {
  if (always(hours)) return "open 24/7";
  const said = (intervals) => (!intervals?.length ? "closed" : allDay(intervals) ? "24 hours"
    : intervals.map((i) => `${i.opens}–${i.closes}`).join(", "));
  const groups = [];
  for (const [day] of DAYS) {
    const text = said(hours[day]);
    if (groups.at(-1)?.text === text) groups.at(-1).days.push(capitalise(day));
    else groups.push({ text, days: [capitalise(day)] });
  }
  const parts = groups.length === 1 ? [`daily ${groups[0].text}`]
    : groups.map(({ days, text }) => `${days.length > 2 ? `${days[0]}–${days.at(-1)}` : days.join(", ")} ${text}`);
  if (hours[BANK] != null) parts.push(`bank holidays ${said(hours[BANK])}`);
  return parts.join("; ");
}

// --- forms ---------------------------------------------------------------------------------------------

function control(section, spec, item, id) {
  const value = item ? item[spec.name] : spec.fallback;
  const described = `${id}-error`;
  if (spec.type === "select") {
    const select = el("select", { id, name: spec.name, "aria-describedby": described },
      spec.placeholder ? el("option", { value: "" }, spec.placeholder) : null,
      spec.options(item).map(([code, text]) => el("option", { value: code }, text)));
    select.value = value ?? "";
    return select;
  }
  if (spec.type === "checkbox") {
    return el("input", { id, name: spec.name, type: "checkbox", checked: Boolean(value), "aria-describedby": described });
  }
  if (spec.type === "hours") return hoursControl(id, value);
  if (spec.type === "areas") {
    const chosen = new Set(value || []);
    const areas = activeAreas().concat(state.areas.filter((a) => !a.active && chosen.has(a.code)));
    return el("div", { class: "checks", role: "group" }, areas.map((a) => el("label", { class: "check" },
      el("input", { type: "checkbox", name: spec.name, value: a.code, checked: chosen.has(a.code) }),
      ` ${a.name} (${a.code})${a.active ? "" : ", retired"}`)));
  }
  return el("input", { id, name: spec.name, type: spec.type || "text", value: value ?? "", step: spec.step, min: spec.min,
    max: spec.max, inputmode: spec.inputmode, autocomplete: spec.autocomplete, required: spec.required,
    "aria-describedby": described });
}

// What a control holds, as the API takes it (undefined: left empty).
function read(spec, node) {
  if (spec.type === "checkbox") return node.checked;
  if (spec.type === "hours") return HOURS.get(node).read();
  if (spec.type === "areas") return [...node.querySelectorAll("input:checked")].map((i) => i.value).sort();
  const raw = node.value.trim();
  if (raw === "") return spec.nullable ? null : undefined;
  if (spec.type === "number") return Number(raw);
  return raw;
}

const same = (a, b) => (Array.isArray(a) ? [...a].sort().join() === [...(b || [])].sort().join()
  : a && typeof a === "object" ? JSON.stringify(a) === JSON.stringify(b) : (a ?? null) === (b ?? null));

function openForm(section, item = null) {
  const open = state.forms[section];
  if (open && open.dirty()) {
    open.say(`Save or cancel this form first: it has changes.`);
    open.node.scrollIntoView({ block: "nearest" });
    return;
  }
  const form = buildForm(section, item);
  state.forms[section] = form;
  slots[section].form.replaceChildren(form.node);
  form.node.querySelector("input, select")?.focus();
}

function closeForm(section) {
  state.forms[section] = null;
  slots[section].form.replaceChildren();
}

function buildForm(section, item) {
  const meta = SECTIONS[section];
  const specs = FIELDS[section]().filter((s) => !(item && s.createOnly));
  const ctx = { specs, noun: meta.noun };
  const prefix = `${section}-f`;
  const nodes = new Map();
  const wrappers = new Map();
  const fields = specs.map((spec) => {
    const id = `${prefix}-${spec.name}`;
    const node = control(section, spec, item, id);
    const error = el("p", { class: "error field-error", id: `${id}-error`, hidden: true });
    nodes.set(spec.name, node);
    let wrapper;
    if (spec.type === "areas" || spec.type === "hours") {
      wrapper = el("fieldset", { class: "field wide", "data-field": spec.name, "aria-describedby": `${id}-error` },
        el("legend", {}, spec.label), node, error);
    } else if (spec.type === "checkbox") {
      wrapper = el("div", { class: "field", "data-field": spec.name }, el("label", { for: id, class: "check" }, node, ` ${spec.label}`), error);
    } else {
      wrapper = el("div", { class: "field", "data-field": spec.name }, el("label", { for: id }, spec.label), node, error);
    }
    wrappers.set(spec.name, wrapper);
    return wrapper;
  });
  const formError = el("p", { class: "error", role: "alert", hidden: true });
  const submit = el("button", { type: "submit" }, item ? "Save changes" : meta.add);
  const title = item ? `Change ${meta.name(item)}` : meta.add;
  const node = el("form", { class: "card admin-form", novalidate: true, "aria-label": title, "data-form": section },
    el("h3", {}, title),
    el("div", { class: "grid" }, fields),
    formError,
    el("div", { class: "row-actions" }, submit,
      el("button", { type: "button", class: "secondary", onclick: () => closeForm(section) }, "Cancel")));

  const values = () => Object.fromEntries(specs.map((s) => [s.name, read(s, nodes.get(s.name))]));
  const original = Object.fromEntries(specs.map((s) => [s.name, read(s, control(section, s, item, "x"))]));
  // Fields that do not apply to the chosen role are hidden and sent empty.
  const applies = (spec, v) => !spec.showIf || spec.showIf(v);
  const relevant = () => {
    const v = values();
    for (const spec of specs) wrappers.get(spec.name).hidden = !applies(spec, v);
  };
  node.addEventListener("change", relevant);
  relevant();
  // A unit's position starts at its area's centre, until someone types one.
  if (section === "units") {
    nodes.get("area_code").addEventListener("change", () => {
      const area = state.areas.find((a) => a.code === nodes.get("area_code").value);
      if (!area) return;
      if (nodes.get("lat").value === "") nodes.get("lat").value = area.lat;
      if (nodes.get("lon").value === "") nodes.get("lon").value = area.lon;
    });
  }

  const clear = () => {
    formError.hidden = true;
    for (const spec of specs) {
      const wrapper = wrappers.get(spec.name);
      const error = wrapper.querySelector(".field-error");
      error.hidden = true;
      error.textContent = "";
      nodes.get(spec.name).removeAttribute?.("aria-invalid");
      wrapper.removeAttribute("aria-invalid");
      HOURS.get(nodes.get(spec.name))?.clear();
    }
  };
  const say = (text) => {
    formError.textContent = text;
    formError.hidden = false;
  };
  // `field`: the problem's whole field, for a control with parts (opening hours: the day and time it names).
  const mark = (name, text, field) => {
    const wrapper = wrappers.get(name);
    if (!wrapper || wrapper.hidden) return false;
    if (HOURS.get(nodes.get(name))?.mark(field, text)) {
      wrapper.setAttribute("aria-invalid", "true");
      return true;
    }
    const error = wrapper.querySelector(".field-error");
    error.textContent = text;
    error.hidden = false;
    const target = ["areas", "hours"].includes(spec(name).type) ? wrapper : nodes.get(name);
    target.setAttribute("aria-invalid", "true");
    return true;
  };
  const spec = (name) => specs.find((s) => s.name === name);
  const focus = (name) => (HOURS.get(nodes.get(name))?.invalid()
    || (spec(name).type === "areas" ? wrappers.get(name).querySelector("input") : nodes.get(name)))?.focus();

  // What is sent: for a new one every field given; for a change only what differs from what was loaded.
  const body = () => {
    const v = values();
    for (const s of specs) if (!applies(s, v)) v[s.name] = s.type === "areas" ? [] : null;
    if (!item) return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined && x !== null));
    return Object.fromEntries(Object.entries(v).filter(([k, x]) => !same(x, original[k])).map(([k, x]) => [k, x ?? null]));
  };

  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    const v = values();
    const missing = specs.filter((s) => s.required && applies(s, v) && (v[s.name] === undefined || v[s.name] === null));
    const unreadable = specs.filter((s) => s.type === "number" && typeof v[s.name] === "number" && !Number.isFinite(v[s.name]));
    for (const s of missing) mark(s.name, s.type === "select" ? `${s.placeholder}.` : `Enter the ${s.label.toLowerCase()}.`);
    for (const s of unreadable) mark(s.name, s.hint);
    if (missing.length || unreadable.length) return focus((missing[0] || unreadable[0]).name);
    const changes = body();
    if (item && !Object.keys(changes).length) return say("Nothing has changed.");
    submit.disabled = true;
    try {
      const saved = await api(item ? meta.url(item) : meta.path, { method: item ? "PATCH" : "POST", body: changes });
      showBanner("");
      closeForm(section);
      afterSave(section, saved, item);
    } catch (e) {
      const problems = e instanceof ApiError ? (e.problem?.errors?.length ? e.problem.errors : [{ field: e.field }]) : [];
      const message = plain(e, ctx);
      const firsts = problems.filter((p, i) => fieldOf(p.field) && problems.findIndex((q) => fieldOf(q.field) === fieldOf(p.field)) === i);
      const marked = firsts.map((p) => fieldOf(p.field)).filter((f, i) =>
        mark(f, fieldOf(e.field) === f ? message : plain(new ApiError({ ...e.problem, field: f }), ctx), firsts[i].field));
      if (marked.length) focus(marked[0]);
      else say(message);
    } finally {
      submit.disabled = false;
    }
  });
  const dirty = () => {
    const v = values();
    return specs.some((s) => !same(v[s.name], original[s.name]));
  };
  return { node, say, dirty };
}

function upsert(section, saved, key = SECTIONS[section].key(saved)) {
  const list = state[section];
  const at = list.findIndex((x) => SECTIONS[section].key(x) === key);
  if (at >= 0) list[at] = { ...list[at], ...saved };
  else list.push(saved);
}

function afterSave(section, saved, item) {
  const meta = SECTIONS[section];
  // The one-time link is shown once, in its panel: it is not kept with the user.
  const { set_password_url: url, set_password_expires_at: expires, ...kept } = saved;
  upsert(section, kept);
  if (url) {
    state.link = { username: saved.username, name: userName(saved), url, expires_at: expires };
    drawLink();
  }
  const extra = section === "units" && !item ? " It is closed with no places until its bed managers open it." : "";
  announce(section, `${capitalise(meta.noun)} ${meta.name(saved)} ${item ? "saved" : "added"}.${extra}`);
  drawList(section);
}

// --- the one-time link ---------------------------------------------------------------------------------

function drawLink() {
  const slot = slots.users.link;
  const link = state.link;
  if (!link) return slot.replaceChildren();
  const input = el("input", { id: "one-time-link", readonly: true, value: link.url, "aria-label": `One-time link for ${link.name}`,
    "aria-describedby": "one-time-warning", onfocus: (e) => e.target.select() });
  const copied = el("span", { class: "muted", role: "status", "aria-live": "polite" });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(link.url);
      copied.textContent = "Copied.";
    } catch {
      input.select();
      copied.textContent = document.execCommand("copy") ? "Copied." : "Select the link and copy it yourself.";
    }
  };
  const heading = el("h3", { id: "one-time-h", tabindex: "-1" }, `One-time link for ${link.name}`);
  slot.replaceChildren(el("section", { class: "card link-panel", "aria-labelledby": "one-time-h" },
    heading,
    el("p", { class: "warning", id: "one-time-warning" },
      `Give this link to ${link.name} only, by a channel only they read: whoever opens it sets their password. `,
      `It works once, until ${londonTime(link.expires_at)}, and is shown only now.`),
    input,
    el("div", { class: "row-actions" },
      el("button", { type: "button", onclick: copy, "aria-label": `Copy the one-time link for ${link.name}` }, "Copy link"),
      el("button", { type: "button", class: "secondary", onclick: () => { state.link = null; drawLink(); } }, "Done: I have given it"),
      copied)));
  heading.focus();
}

// --- lists ---------------------------------------------------------------------------------------------

function announce(section, text) {
  slots[section].status.textContent = text;
}

// The actions on one item: [label, action, destructive?]. A destructive one asks first.
function actionsOf(section, item) {
  if (section === "users") {
    return item.active
      ? [["Edit", "edit"], ["Reset password", "reset", true], ["Deactivate", "deactivate", true]]
      : [["Edit", "edit"], ["Reactivate", "reactivate"]];
  }
  if (section === "providers") return [["Edit", "edit"]];
  return item.active ? [["Edit", "edit"], ["Retire", "retire", true]] : [["Edit", "edit"], ["Reactivate", "reactivate"]];
}

const RETIRING = {
  units: "It will no longer be offered, held or admitted to. Its history and reports stay",
  areas: "Nobody new can be recorded as from it and it leaves the lists of areas. Its history and reports stay",
  alternatives: "It will no longer be offered to AMHPs. Its record stays",
};
const CONFIRM = {
  retire: (section, name) => `Retire ${name}? ${RETIRING[section]}, and you can reactivate it later.`,
  deactivate: (section, name) => `Deactivate ${name}? They are signed out at once and cannot sign in until someone reactivates them.`,
  reset: (section, name) => `Make a new one-time link for ${name}? Any link made for them before stops working.`,
};

async function act(section, item, action) {
  const meta = SECTIONS[section];
  const key = meta.key(item);
  const name = meta.name(item);
  delete state.errors[`${section}:${key}`];
  try {
    if (action === "reset") {
      const link = await api(`${meta.url(item)}/reset-password`, { method: "POST" });
      state.link = { username: item.username, name, url: link.set_password_url, expires_at: link.expires_at };
      state.confirm = null;
      drawList(section);
      drawLink();
      announce(section, `A new one-time link for ${name} is shown above.`);
      return;
    }
    const active = action === "reactivate";
    const saved = await api(meta.url(item), { method: "PATCH", body: { active } });
    upsert(section, saved, key);
    state.confirm = null;
    showBanner("");
    announce(section, `${capitalise(meta.noun)} ${name} ${{ retire: "retired", deactivate: "deactivated", reactivate: "reactivated" }[action]}.`);
  } catch (e) {
    state.errors[`${section}:${key}`] = plain(e, { noun: meta.noun });
    state.confirm = null;
  }
  drawList(section);
  slots[section].list.querySelector(`[data-focus="${CSS.escape(`${key}:edit`)}"]`)?.focus();
}

// What a user of the role works for ("provider", "areas" or "all"), as GET /api/codes says.
function roleScope(role) {
  return codes.find("roles", role)?.scope;
}

function details(section, item) {
  if (section === "users") {
    const scope = roleScope(item.role) === "provider" ? providerName(item.provider_id) : item.areas.map(areaName).join(", ");
    return [codes.label("roles", item.role), scope, item.email].filter(Boolean).join(" · ");
  }
  if (section === "providers") return [codes.label("sectors", item.sector), item.ods_code ? `ODS ${item.ods_code}` : "no ODS code"].join(" · ");
  if (section === "units") {
    return [item.code, codes.label("kinds", item.kind), providerName(item.provider_id), areaName(item.area_code)].filter(Boolean).join(" · ");
  }
  if (section === "alternatives") {
    return [item.code, codes.label("alternative_kinds", item.kind), item.areas.map(areaName).join(", "),
      hoursInWords(item.opening_hours), item.phone].filter(Boolean).join(" · ");
  }
  return [item.code, item.region, `centre ${item.lat}, ${item.lon}`].filter(Boolean).join(" · ");
}

const unitStatus = (u) => (u.status === "open" ? `open, ${u.open_places} ${u.open_places === 1 ? "place" : "places"}` : "closed");

function itemNode(section, item) {
  const meta = SECTIONS[section];
  const key = meta.key(item);
  const name = meta.name(item);
  const badges = [];
  if (section === "users" && !item.active) badges.push(el("span", { class: "badge bad" }, "deactivated"));
  if (section === "users" && item.active && !item.password_set) badges.push(el("span", { class: "badge" }, "no password yet"));
  if (section !== "users" && section !== "providers" && !item.active) badges.push(el("span", { class: "badge bad" }, "retired"));
  if (section === "units") badges.push(el("span", { class: `badge ${item.status === "open" ? "ok" : ""}`, "data-field": "status" }, unitStatus(item)));
  if (section === "alternatives" && item.active) badges.push(el("span", { class: `badge ${item.open_now ? "ok" : ""}` }, item.open_now ? "open now" : "closed now"));
  const confirming = state.confirm && state.confirm.section === section && state.confirm.key === key ? state.confirm.action : null;
  const buttons = actionsOf(section, item).map(([text, action, destructive]) => el("button", {
    type: "button", class: destructive ? "secondary danger-outline" : "secondary", "data-focus": `${key}:${action}`,
    "aria-label": `${text} ${name}`, "aria-expanded": destructive ? String(confirming === action) : undefined,
    onclick: () => {
      if (action === "edit") return openForm(section, item);
      if (destructive) {
        state.confirm = { section, key, action };
        drawList(section);
        return slots[section].list.querySelector(`[data-focus="${CSS.escape(`${key}:yes`)}"]`)?.focus();
      }
      return act(section, item, action);
    },
  }, text));
  const error = state.errors[`${section}:${key}`];
  const verb = { retire: "Yes, retire", deactivate: "Yes, deactivate", reset: "Yes, make a new link" }[confirming];
  return el("li", { "data-key": key, [`data-${meta.noun}`]: key },
    el("div", { class: "item-main" }, el("strong", {}, name), " ", badges, el("div", { class: "muted" }, details(section, item))),
    el("div", { class: "row-actions" }, buttons),
    error ? el("p", { class: "error", role: "alert" }, error) : null,
    confirming ? el("div", { class: "confirm", role: "group", "aria-label": `Confirm: ${verb.slice(5)} ${name}` },
      el("p", {}, CONFIRM[confirming](section, name)),
      el("div", { class: "row-actions" },
        el("button", { type: "button", class: "danger", "data-focus": `${key}:yes`, "aria-label": `${verb} ${name}`,
          onclick: () => act(section, item, confirming) }, verb),
        el("button", { type: "button", class: "secondary", "data-focus": `${key}:no`, onclick: () => {
          state.confirm = null;
          drawList(section);
          slots[section].list.querySelector(`[data-focus="${CSS.escape(`${key}:${confirming}`)}"]`)?.focus();
        } }, "Cancel"))) : null,
  );
}

function drawList(section) {
  const meta = SECTIONS[section];
  const q = state.q[section].trim().toLowerCase();
  const items = state[section].filter((x) => meta.serverSearch || !q || meta.match(x, q)).sort((a, b) => meta.name(a).localeCompare(meta.name(b)));
  const list = slots[section].list;
  // Keep the focus where it was across a redraw.
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
  list.replaceChildren(...items.map((item) => itemNode(section, item)));
  slots[section].count.textContent = items.length
    ? `${items.length} ${meta.noun}${items.length === 1 ? "" : "s"}${q ? ` matching “${state.q[section].trim()}”` : ""}`
    : q ? `No ${meta.noun} matches “${state.q[section].trim()}”.` : `No ${meta.noun}s yet.`;
  if (focused) list.querySelector(`[data-focus="${CSS.escape(focused)}"]`)?.focus();
}

// Server-side search for users and units: the latest answer wins.
const asked = {};
async function load(section) {
  const meta = SECTIONS[section];
  const q = state.q[section].trim();
  const ticket = (asked[section] = (asked[section] || 0) + 1);
  const items = await api(meta.serverSearch && q ? `${meta.path}?q=${encodeURIComponent(q)}` : meta.path);
  if (ticket !== asked[section]) return;
  state[section] = items;
  drawList(section);
}

async function loadAll() {
  try {
    await Promise.all(Object.keys(SECTIONS).map(load));
    // A list drawn before the areas or providers came named them by code: name them now.
    for (const section of Object.keys(SECTIONS)) drawList(section);
    showBanner("");
  } catch (e) {
    showBanner(plain(e));
  }
}

function sectionNode(section) {
  const meta = SECTIONS[section];
  const search = el("input", { type: "search", id: `${section}-q`, autocomplete: "off", "aria-controls": `${section}-list` });
  let timer = null;
  search.addEventListener("input", () => {
    state.q[section] = search.value;
    if (!meta.serverSearch) return drawList(section);
    clearTimeout(timer);
    timer = setTimeout(() => load(section).then(() => showBanner("")).catch((e) => showBanner(plain(e))), 250);
  });
  slots[section] = {
    link: el("div"), form: el("div"),
    status: el("p", { class: "announce", role: "status", "aria-live": "polite" }),
    count: el("p", { class: "muted", id: `${section}-count`, "aria-live": "polite" }),
    list: el("ul", { class: "admin-list", id: `${section}-list`, "aria-label": meta.title }),
  };
  const s = slots[section];
  return el("section", { id: section, class: "admin-section", "aria-labelledby": `${section}-h`, hidden: true },
    el("div", { class: "section-head" }, el("h2", { id: `${section}-h` }, meta.title),
      el("button", { type: "button", onclick: () => openForm(section) }, meta.add)),
    el("p", { class: "muted" }, meta.about),
    s.link, s.form, s.status,
    el("div", { class: "card" },
      el("label", { for: `${section}-q` }, meta.search), search, s.count, s.list));
}

// One section at a time, named by the address's "#": another "#" (the skip link's) keeps the section shown.
let tab = "users";
function showTab() {
  if (SECTIONS[location.hash.slice(1)]) tab = location.hash.slice(1);
  for (const section of Object.keys(SECTIONS)) document.getElementById(section).hidden = section !== tab;
  for (const link of document.querySelectorAll(".admin-nav a")) {
    if (link.dataset.tab === tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function onEvent(frame) {
  if (frame.type !== "unit.availability") return;
  const unit = state.units.find((u) => u.id === frame.data.unit_id);
  if (!unit) return;
  Object.assign(unit, { status: frame.data.status, open_places: frame.data.open_places });
  // Only the figure changes: nothing else on the page is redrawn.
  const badge = slots.units.list.querySelector(`li[data-key="${CSS.escape(unit.id)}"] [data-field=status]`);
  if (badge) {
    badge.textContent = unitStatus(unit);
    badge.className = `badge ${unit.status === "open" ? "ok" : ""}`;
  }
}

const me = await whoAmI();
if (me.role !== "admin") {
  app.replaceChildren(el("p", { class: "card" }, "This page is for admins. ", el("a", { href: "/" }, "Log in"), " as an admin to use it."));
  document.getElementById("live").hidden = true;
} else {
  app.replaceChildren(...Object.keys(SECTIONS).map(sectionNode));
  window.addEventListener("hashchange", showTab);
  showTab();
  connectEvents({ onEvent, resync: loadAll });
}
