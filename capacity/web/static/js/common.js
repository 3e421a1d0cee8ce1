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

// Call the API; throws ApiError with the problem details on any 4xx/5xx. A 401 returns to the login page.
export async function api(path, { method = "GET", body, headers: extra = {} } = {}) {
  const headers = { Accept: "application/json", ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["x-csrftoken"] = csrfToken();
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
  });
  if (response.status === 401 && !path.startsWith("/login")) {
    window.location.assign("/");
    throw new ApiError({ status: 401, detail: "Please log in" });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(data || { status: response.status });
  return data;
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

// <option>s for a code set: value the code, text its label (or what `text` makes of the entry).
export const codeOptions = (list, text = (c) => c.label) => list.map((c) => el("option", { value: c.code }, text(c)));

const LONDON = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Europe/London", day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit",
});
export const londonTime = (iso) => (iso ? LONDON.format(new Date(iso)) : "—");

// "12:05" or "1 h 02 min" left until `iso`; negative spans read "expired".
export function countdown(iso, now = Date.now()) {
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
      status.textContent = "live";
      status.className = "live on";
      if (subscribe) socket.send(JSON.stringify({ action: "subscribe", ...subscribe }));
      resync();
    });
    socket.addEventListener("message", (message) => {
      const frame = JSON.parse(message.data);
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
