// Shared by every page: the API over the session cookie (with the CSRF header), the code sets, the live
// stream with reconnect and resync, and times shown in Europe/London.

const CSRF_COOKIE = "capacity_csrf";

function csrfToken() {
  const match = document.cookie.split("; ").find((c) => c.startsWith(CSRF_COOKIE + "="));
  return match ? decodeURIComponent(match.split("=")[1]) : "";
}

export class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "Request failed");
    this.problem = problem;
    this.status = problem.status;
    this.field = problem.field;
  }
}

// What a page shows while the server cannot be reached; it clears itself once the server answers again.
export const OFFLINE_TEXT = "Could not reach capacity - check your connection; retrying";

// A request that never reached the server (fetch's "TypeError: Failed to fetch"): said in words.
export class NetworkError extends Error {
  constructor() {
    super(OFFLINE_TEXT);
    this.name = "NetworkError";
    this.network = true;
  }

  toString() { return this.message; }
}

// The connection notice (#offline): shown when a request cannot reach the server; while it shows, the
// server is asked for /health every few seconds, and the first answer (or any other request's, or the
// live stream reconnecting) hides it and tells the page with a "capacity:online" event, to re-read.
let offline = false, probe = null;
function setOnline(online) {
  if (online === !offline) return;
  offline = !online;
  let notice = document.getElementById("offline");
  if (!notice) {
    notice = Object.assign(document.createElement("div"), { id: "offline", className: "banner offline", hidden: true });
    notice.setAttribute("role", "status");
    document.body.prepend(notice);
  }
  notice.textContent = offline ? OFFLINE_TEXT : "";
  notice.hidden = !offline;
  clearTimeout(probe);
  if (offline) {
    let delay = 1000;
    const check = async () => {
      try {
        if ((await fetch("/health", { cache: "no-store" })).status < 500) return setOnline(true);
      } catch { /* still unreachable */ }
      delay = Math.min(delay * 2, 10000);
      if (offline) probe = setTimeout(check, delay);
    };
    probe = setTimeout(check, delay);
  } else {
    window.dispatchEvent(new Event("capacity:online"));
  }
}

// Call the API; throws ApiError with the problem details on any 4xx/5xx, NetworkError when the server
// cannot be reached. A 401 returns to the login page.
export async function api(path, { method = "GET", body, headers: extra = {} } = {}) {
  const headers = { Accept: "application/json", ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["x-csrftoken"] = csrfToken();
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
    });
  } catch {
    setOnline(false);
    throw new NetworkError();
  }
  setOnline(true);
  if (response.status === 401 && !path.startsWith("/login")) {
    window.location.assign("/");
    throw new ApiError({ status: 401, detail: "Please log in" });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {  // not the API's own answer (a proxy's error page, say)
    data = { status: response.status, detail: "The server gave an answer capacity could not read." };
  }
  if (!response.ok) throw new ApiError(data || { status: response.status });
  return data;
}

// --- problems in words ------------------------------------------------------------------------------
// A 422's problem details name the field (`field`, dotted: "person.age") and list `errors` [{field,
// message}], whose messages are msgspec's ("Expected `int` >= 0 - at `$.open_places`"). These say them
// to a person: `labels` names each field as the form does ({"person.age": "Age"}), `hints` may say what
// a field takes ({"person.ref": "Use letters and digits"}), used when the value did not match.

const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);
const sentence = (text) => capitalise(String(text).trim()).replace(/([^.!?])$/, "$1.");

// One validation message about a field, in words.
export function fieldMessage(message, label, hint) {
  const raw = String(message || "").replace(/\s+-\s+at `\$[^`]*`$/, "");
  const rules = [
    [/Expected `int` >= (-?\d+)/, (m) => `${label} must be ${m[1]} or more.`],
    [/Expected `int` <= (-?\d+)/, (m) => `${label} must be ${m[1]} or less.`],
    [/Expected `int`/, () => `${label} must be a whole number.`],
    [/Expected `(?:float|number)`/, () => `${label} must be a number.`],
    [/Expected `str` of length >= 1\b/, () => `${label} must be filled in.`],
    [/Expected `str` of length >= (\d+)/, (m) => `${label} must be at least ${m[1]} characters.`],
    [/Expected `str` of length <= (\d+)/, (m) => `${label} must be at most ${m[1]} characters.`],
    [/Expected `str` matching regex/, () => hint || `${label} holds characters that are not allowed.`],
    [/Expected `datetime`|RFC3339|Invalid datetime/i, () => `${label} must be a date and time.`],
    [/Invalid enum value|Expected `str`/, () => `Choose ${label.toLowerCase()} from the list.`],
    [/missing required field/i, () => `${label} must be filled in.`],
    [/Expected `null`|got `null`/, () => `${label} must be filled in.`],
  ];
  for (const [pattern, say] of rules) {
    const match = raw.match(pattern);
    if (match) return say(match);
  }
  return sentence(raw.replace(/`/g, "")) || `Check ${label.toLowerCase()}.`;
}

// What went wrong with a request, in words: `fields` maps each field the problem names (and that the
// form has a label for) to its message; `general` is the rest, or "" when every part has its field;
// `network` is true when the request never reached the server.
export function problemInWords(error, { labels = {}, hints = {}, conflict } = {}) {
  if (error instanceof NetworkError || !(error instanceof ApiError)) {
    if (error instanceof NetworkError) {
      return { fields: {}, general: "Not sent: could not reach capacity. What you typed is kept; try again once the connection is back.", network: true };
    }
    return { fields: {}, general: "Something went wrong in this page. Reload it and try again." };
  }
  const problem = error.problem || {};
  const status = error.status;
  if (status === 403) return { fields: {}, general: "You are not allowed to do this. Your session may have ended: log in again." };
  if (status === 404) return { fields: {}, general: "This is no longer there: someone may have changed it." };
  if (status === 409) return { fields: {}, general: conflict || sentence(problem.detail || "Someone else changed this first") };
  if (status === 429 || status === 503) return { fields: {}, general: "The service is busy. Try again in a moment." };
  if (status >= 500) return { fields: {}, general: "Something went wrong on the server. Try again in a moment." };
  const validation = String(problem.type || "").endsWith("/validation-error");
  const parts = problem.errors?.length ? problem.errors : [{ field: problem.field, message: problem.detail }];
  const fields = {};
  const rest = [];
  for (const part of parts) {
    const label = labels[part.field];
    const text = validation ? fieldMessage(part.message, label || "This value", hints[part.field]) : sentence(part.message || problem.detail || "");
    if (label && !fields[part.field]) fields[part.field] = text;
    else if (!label) rest.push(validation ? "Something in the form could not be read: check it and try again." : text);
  }
  return { fields, general: [...new Set(rest)].join(" ") };
}

// The code sets and their labels (GET /api/codes), read once per page load: the pages keep no copies of
// code lists. `codes.kinds` and the like are [{code, label, ...}]; `codes.label("kinds", code)` names one.
let codesOnce = null;
export function loadCodes() {
  codesOnce ??= api("/api/codes").then((sets) => {
    const byCode = Object.fromEntries(Object.entries(sets).map(([set, list]) => [set, new Map(list.map((c) => [c.code, c]))]));
    return {
      ...sets,
      find: (set, code) => byCode[set]?.get(code),
      label: (set, code) => byCode[set]?.get(code)?.label ?? String(code ?? "").replaceAll("_", " "),
      has: (set, code) => Boolean(byCode[set]?.has(code)),
    };
  });
  return codesOnce;
}

// A code set's entry as the code and its label, "A White - British": where the code itself is known.
export const withCode = (c) => `${c.code} ${c.label}`;

// <option>s for a code set: value the code, text its label (or what `text` makes of the entry).
export const codeOptions = (list, text = (c) => c.label) => list.map((c) => el("option", { value: c.code }, text(c)));

const LONDON = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London", day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit",
});
export const londonTime = (iso) => (iso ? LONDON.format(new Date(iso)) : "—");

// --- date-times typed in London time ----------------------------------------------------------------
// Every date-time a person types is "03 Dec 2026, 14:05": 24-hour, Europe/London, whatever the
// browser's locale (a datetime-local input follows the locale). The zone's rules come from Intl.
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const LONDON_PARTS = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric",
  hourCycle: "h23",
});
// London's wall clock at an instant (ms): {year, month (1-12), day, hour, minute}.
function londonWall(ms) {
  const parts = Object.fromEntries(LONDON_PARTS.formatToParts(new Date(ms)).filter((p) => p.type !== "literal")
    .map((p) => [p.type, Number(p.value)]));
  return { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour % 24, minute: parts.minute };
}
const wallMs = (w) => Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute);
const two = (n) => String(n).padStart(2, "0");

// "03 Dec 2026, 14:05" in London for an instant; "" for none.
export function londonDateTime(iso) {
  if (!iso) return "";
  const w = londonWall(new Date(iso).getTime());
  return `${two(w.day)} ${MONTHS[w.month - 1]} ${w.year}, ${two(w.hour)}:${two(w.minute)}`;
}

export const LONDON_EXAMPLE = "03 Dec 2026, 14:05";
const FULL_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
  "december"];
// 0-11 for a month's name or its start ("dec", "December", "Sept"), -1 for anything else.
const monthOf = (word) => FULL_MONTHS.findIndex((name) => word.length >= 3 && name.startsWith(word.toLowerCase()));
const dayExists = (year, month, day) => day >= 1 && new Date(Date.UTC(year, month, day)).getUTCDate() === day;
const DAY_TYPED = /^(\d{1,2})[\s/-]*([a-z]{3,9})\.?[\s/,-]*(\d{4})$/i;

// A calendar day typed like "01 Nov 2026" (or "1 november 2026"): {date: "2026-11-01"}, or {error} in words.
export function readDate(text, label) {
  const typed = String(text ?? "").trim();
  const m = typed.match(DAY_TYPED);
  const month = m ? monthOf(m[2]) : -1;
  if (month < 0) return { error: `${label}: write the date like 01 Nov 2026.` };
  if (!dayExists(Number(m[3]), month, Number(m[1]))) return { error: `${label}: ${typed} is not a date that exists.` };
  return { date: `${m[3]}-${two(month + 1)}-${two(Number(m[1]))}` };
}

// "2026-11-01" as "01 Nov 2026".
export const dayText = (date) => {
  const [year, month, day] = date.split("-").map(Number);
  return `${two(day)} ${MONTHS[month - 1]} ${year}`;
};
const TYPED = /^(\d{1,2})[\s/-]*([a-z]{3,9})\.?[\s/,-]*(\d{4})[\s,]+(?:at\s+)?(\d{1,2})[:.h](\d{2})$/i;

// What was typed as a London date and time: {iso} (UTC, with Z), {iso: undefined} when nothing was
// typed, or {error} in words. Day month year then the time: "3 dec 2026 14:05", "03 December 2026, 9.30".
export function readLondon(text, label) {
  const typed = String(text ?? "").trim();
  if (!typed) return { iso: undefined };
  const wrong = { error: `${label}: write the date and time like ${LONDON_EXAMPLE} (London time, 24-hour clock).` };
  const m = typed.match(TYPED);
  const month = m ? monthOf(m[2]) : -1;
  if (month < 0) return wrong;
  const wall = { year: Number(m[3]), month: month + 1, day: Number(m[1]), hour: Number(m[4]), minute: Number(m[5]) };
  if (!dayExists(wall.year, month, wall.day) || wall.hour > 23 || wall.minute > 59) {
    return { error: `${label}: ${typed} is not a date and time that exists. Write it like ${LONDON_EXAMPLE}.` };
  }
  // The instant whose London wall clock reads `wall`: the offset at a first guess, then at the answer
  // (the two differ only near a clock change).
  const target = wallMs(wall);
  let ms = target - (wallMs(londonWall(target)) - target);
  ms = target - (wallMs(londonWall(ms)) - ms);
  if (wallMs(londonWall(ms)) !== target) {
    return { error: `${label}: ${typed} did not happen in London (the clocks went forward an hour then).` };
  }
  return { iso: new Date(ms).toISOString().replace(/\.000Z$/, "Z") };
}

// The date-times of a form read at once: {values: {name: iso}, fields: {name: error}}; `texts` maps each
// name to what was typed, `labels` names each one.
export function readLondonFields(texts, labels) {
  const values = {}, fields = {};
  for (const [name, text] of Object.entries(texts)) {
    const { iso, error } = readLondon(text, labels[name] || name);
    if (error) fields[name] = error;
    else if (iso) values[name] = iso;
  }
  return { values, fields };
}

// The server's clock less this browser's, measured from the live stream's hello: a hold expires by the
// server's clock, so countdowns count to its instants whatever this computer's clock says.
let skew = 0;
export const serverNow = () => Date.now() + skew;

// "12:05" or "1 h 02 min" left until `iso`; negative spans read "expired".
export function countdown(iso, now = serverNow()) {
  const ms = new Date(iso).getTime() - now;
  if (ms <= 0) return "expired";
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : `${m}:${String(s).padStart(2, "0")}`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function showBanner(message) {
  const banner = document.getElementById("banner");
  banner.textContent = message;
  banner.hidden = !message;
}

// The live stream: calls onEvent(frame) for each event and resync() after every (re)connection, so a
// page is never left showing figures it missed while disconnected.
export function connectEvents({ onEvent, resync, subscribe }) {
  const status = document.getElementById("live");
  let delay = 500;
  const open = () => {
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/events`);
    socket.addEventListener("open", () => {
      delay = 500;
      setOnline(true);
      status.textContent = "live";
      status.className = "live on";
      if (subscribe) socket.send(JSON.stringify({ action: "subscribe", ...subscribe }));
      resync();
    });
    socket.addEventListener("message", (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "hello" && frame.at) skew = Date.parse(frame.at) - Date.now();
      if (frame.type !== "hello" && frame.type !== "pong" && frame.type !== "subscribed") onEvent(frame);
    });
    socket.addEventListener("close", () => {
      status.textContent = "reconnecting…";
      status.className = "live off";
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    });
  };
  open();
}

export async function whoAmI() {
  const [me, codes] = await Promise.all([api("/api/me"), loadCodes()]);
  document.getElementById("who").textContent = `${me.username} (${codes.label("roles", me.role)})`;
  document.getElementById("logout")?.addEventListener("click", async () => {
    await api("/logout", { method: "POST" });
    window.location.assign("/");
  });
  return me;
}

// A list a page shows of person-level records (holds, placements), kept current from live events. Every
// read of such a list is audited by the server, so the page must not re-read it for each event: `apply`
// patches the items from one event's own data and marks an item `partial: true` where the event does
// not carry everything the page shows. Re-reads, for partial items or a resync, are coalesced: at most
// one in flight, and any requests while it runs make at most one more after it. A read for partial items
// waits until one has lasted `settle` ms, so that a burst of events costs one read and an item gone by
// then (a hold made and released at once) none. Events that arrive while a read is in flight are applied
// again to its answer, so a read that began before them never brings back what they removed.
//   read(): Promise<items>        apply(items, frame): items        onChange(): the page redraws
export function liveList({ read, apply, onChange, settle = 1000 }) {
  let running = null, again = false, forced = false, replay = null;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const stamp = (items) => {
    for (const item of items) {
      if (!item.partial) delete item.partialSince;
      else if (item.partialSince === undefined) item.partialSince = Date.now();
    }
    return items;
  };
  // Until a partial item has lasted `settle` ms (true) or none is left (false); a resync cuts it short.
  const due = async () => {
    for (;;) {
      const since = list.items.filter((item) => item.partial).map((item) => item.partialSince ?? 0);
      if (forced) return true;
      if (!since.length) return false;
      const wait = Math.min(...since) + settle - Date.now();
      if (wait <= 0) return true;
      await sleep(wait);
    }
  };
  const list = {
    items: [],
    get partial() { return list.items.some((item) => item.partial); },
    // Replace the items, e.g. with what the API answered to the user's own action.
    set(items) {
      list.items = items;
      onChange();
    },
    event(frame) {
      list.items = stamp(apply(list.items, frame));
      replay?.push(frame);
      onChange();
      if (list.partial) list.refresh({ force: false }).catch(() => {});
    },
    // Re-read now (a resync), or with `force: false` only for partial items that last `settle` ms.
    refresh({ force = true } = {}) {
      if (force) forced = true;
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        let failure = null;
        try {
          do {
            again = false;
            if (!(await due())) continue;
            forced = false;
            replay = [];
            try {
              let fresh = await read();
              for (const frame of replay) fresh = apply(fresh, frame);
              list.items = stamp(fresh);
              failure = null;
            } catch (e) {
              failure = e;
            } finally {
              replay = null;
            }
            onChange();
          } while (again || forced);
        } finally {
          running = null;
        }
        if (failure) throw failure;
      })();
      return running;
    },
  };
  return list;
}
