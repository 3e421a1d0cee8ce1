// Escalation levels (API.md "Beyond beds"): each provider's declared operational pressure, OPEL 1 to 4.
// Every unit carries its provider's level; the public event provider.escalation tells every page of a new
// declaration at once, and `escalations` keeps the latest heard of each provider, so a page shows it without
// re-reading anything. The bed manager's panel shows their provider's level, says when it has gone stale
// (not reviewed within CAPACITY_ESCALATION_STALE_MINUTES, as the API flags it) and declares a new one.
import { api, londonTime, problemInWords } from "./common.js";
import { Field, html, invalid, NO_PROBLEM, useEffect, useProblem, useState } from "./view.js";

// The OPEL framework's words for each level (NHS England).
const WORDS = { 1: "steady state", 2: "moderate pressure", 3: "severe pressure", 4: "extreme pressure" };
const LEVELS = Object.keys(WORDS).map(Number);
export const opelInWords = (level) => `OPEL ${level}: ${WORDS[level]}`;
const tone = (level) => (level >= 3 ? "bad" : level === 1 ? "ok" : "");
const TARGET = "min-height:44px";  // a finger's width, at any screen size

// The latest escalation heard of each provider (GET /api/providers or an event), by provider id.
const known = new Map();
const listeners = new Set();
const changed = () => { for (const listener of listeners) listener(); };
const instant = (iso) => (iso ? new Date(iso).getTime() : -Infinity);

export const escalations = {
  async refresh() {
    for (const provider of await api("/api/providers")) known.set(provider.id, provider);
    changed();
  },
  // Any live frame: a provider.escalation one patches what every component here shows.
  event(frame) {
    if (frame.type !== "provider.escalation") return;
    const d = frame.data;
    known.set(d.provider_id, { ...known.get(d.provider_id), id: d.provider_id, ...d });
    changed();
  },
  // `shown` (a unit, say) carries a level as it was read; a later declaration heard since replaces it.
  latest(providerId, shown = {}) {
    const heard = known.get(providerId);
    return heard && instant(heard.escalation_at) > instant(shown.escalation_at) ? heard : shown;
  },
};

// A component that draws from `escalations` redraws itself when it changes, not the whole page.
function useEscalations() {
  const [, setTicks] = useState(0);
  useEffect(() => {
    const listener = () => setTicks((n) => n + 1);
    listeners.add(listener);
    return () => listeners.delete(listener);
  }, []);
}

// The level of a unit's provider, as a badge (nothing before its first declaration).
export function OpelBadge({ unit }) {
  useEscalations();
  const e = escalations.latest(unit.provider_id, unit);
  if (!e.escalation_level) return null;
  return html`<div data-field="escalation"><span class=${`badge ${tone(e.escalation_level)}`}>${opelInWords(e.escalation_level)}</span>
    ${e.escalation_stale ? html` <span class="stale">stale</span>` : null}</div>`;
}

const LABELS = { level: "Level", note: "Note" };

// The bed manager's provider's level, its staleness and a form to declare a new one (or the same again, a review).
export function EscalationPanel({ providerId }) {
  useEscalations();
  const [level, setLevel] = useState(null);
  const [note, setNote] = useState("");
  const [said, setSaid] = useState("");
  const [problem, setProblem] = useProblem();
  // Staleness comes with time, not with an event: re-read each minute (one small GET).
  useEffect(() => {
    if (!providerId) return undefined;
    const timer = setInterval(() => escalations.refresh().catch(() => {}), 60_000);
    return () => clearInterval(timer);
  }, [providerId]);
  if (!providerId) return null;
  const e = known.get(providerId) || {};
  const current = e.escalation_level;
  const chosen = level ?? (current ? String(current) : "");
  const declare = async (event) => {
    event.preventDefault();
    setProblem(NO_PROBLEM);
    setSaid("");
    if (!chosen) return setProblem({ fields: { level: "Choose a level." }, general: "" });
    const body = { level: Number(chosen) };
    if (note.trim()) body.note = note.trim();
    try {
      const saved = await api(`/api/providers/${encodeURIComponent(providerId)}/escalation`, { method: "PUT", body });
      known.set(providerId, saved);
      setLevel(null);
      setNote("");
      setSaid(`Declared ${opelInWords(saved.escalation_level)} at ${londonTime(saved.escalation_at)}.`);
      changed();
    } catch (error) {
      setProblem(problemInWords(error, { labels: LABELS }));
    }
  };
  const f = problem.fields;
  return html`<section class="card" aria-labelledby="opel-h" data-escalation=${providerId}>
    <h2 id="opel-h">Escalation level${e.name ? ` of ${e.name}` : ""}</h2>
    ${current
      ? html`<p data-field="escalation"><span class=${`badge ${tone(current)}`}>${opelInWords(current)}</span>
          ${" "}declared ${londonTime(e.escalation_at)}${e.escalation_note ? html`: <q>${e.escalation_note}</q>` : null}</p>`
      : html`<p class="empty">No level declared yet.</p>`}
    ${e.escalation_stale ? html`<p class="warning" data-field="escalation-stale">⚠ This level is stale: it has not been
      reviewed since ${londonTime(e.escalation_at)}. Declare it again to confirm it, or declare a new one.</p>` : null}
    <form aria-label="Declare the escalation level" onSubmit=${declare}>
      <div class="grid">
        <${Field} id="opel-level" label="Level" error=${f.level}>
          <select id="opel-level" style=${TARGET} value=${chosen} onChange=${(ev) => setLevel(ev.currentTarget.value)}
            ...${invalid("opel-level", f.level)}>
            ${current ? null : html`<option value="">Choose a level</option>`}
            ${LEVELS.map((n) => html`<option key=${n} value=${String(n)}>${opelInWords(n)}</option>`)}</select><//>
        <${Field} id="opel-note" label="Note (optional): what drives it" error=${f.note}>
          <input id="opel-note" style=${TARGET} maxlength="500" value=${note} onInput=${(ev) => setNote(ev.currentTarget.value)}
            ...${invalid("opel-note", f.note)} /><//>
        <div><button type="submit" style=${TARGET}>Declare level</button></div>
      </div>
      ${problem.general ? html`<p class="error" role="alert">${problem.general}</p>` : null}
      <p class="announce" role="status" aria-live="polite">${said}</p>
    </form>
  </section>`;
}
