// What the live pages (AMHP, bed manager) draw with: Preact and htm, vendored and imported by name
// (base.html's import map), with no build step. A page keeps its data in plain objects, calls `redraw`
// after changing them, and Preact patches the DOM by keys: a row, a form, what is typed in it and where
// the focus is all stay across live updates. What someone is typing lives in the component's own state.
import { Fragment, h, render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";
import { countdown, LONDON_EXAMPLE } from "./common.js";

export const html = htm.bind(h);
export { Fragment, useEffect, useRef, useState };

// Draw `App` into `root` now, and return a redraw that coalesces the changes of one task into one draw.
export function mount(root, App) {
  let queued = false;
  const draw = () => {
    queued = false;
    render(html`<${App} />`, root);
  };
  root.replaceChildren();
  draw();
  return () => {
    if (!queued) {
      queued = true;
      queueMicrotask(draw);
    }
  };
}

// One timer for every countdown on the page; each redraws only itself.
const ticking = new Set();
setInterval(() => { for (const tick of ticking) tick(); }, 1000);

export function Countdown({ iso }) {
  const [, setTicks] = useState(0);
  useEffect(() => {
    const tick = () => setTicks((n) => n + 1);
    ticking.add(tick);
    return () => ticking.delete(tick);
  }, []);
  return html`<span class="countdown" data-expires=${iso}>${countdown(iso)}</span>`;
}

// A labelled control with its problem beside it, in words (aria-invalid, aria-describedby).
export function Field({ id, label, error, children, className }) {
  return html`<div class=${className || "field"}>
    <label for=${id}>${label}</label>
    ${children}
    ${error ? html`<p class="error field-error" id=${`${id}-error`} role="alert">${error}</p>` : null}
  </div>`;
}

// A date and time typed in London time, 24-hour, whatever the browser's locale: "03 Dec 2026, 14:05".
// What is typed is the caller's (`value`, `onInput(text)`); common.js's readLondonFields reads it for
// the API and says what is wrong, which comes back as `error`, shown beside the field.
export function DateTimeField({ id, label, value, onInput, error, required }) {
  return html`<${Field} id=${id} label=${label} error=${error}>
    <input id=${id} type="text" inputmode="text" autocomplete="off" spellcheck="false" placeholder=${LONDON_EXAMPLE}
      required=${required} value=${value} onInput=${(e) => onInput(e.currentTarget.value)} ...${invalid(id, error)} />
    <span class="muted">London time, like ${LONDON_EXAMPLE}</span>
  <//>`;
}

// "Are you sure?" for an action that ends something: the question names the person and the unit; a
// `choices` list (code set entries) must have one chosen first, from a select that starts empty.
// `missing` says what to choose when nothing is; onConfirm(chosen code) does the action.
export function Confirm({ id, question, action, choiceLabel, choices, missing, onConfirm, onCancel, children }) {
  const [chosen, setChosen] = useState("");
  const [error, setError] = useState("");
  const confirm = async () => {
    if (choices && !chosen) {
      setError(missing);
      return;
    }
    setError("");
    await onConfirm(chosen);
  };
  const selectId = `${id}-choice`;
  return html`<div class="confirm" role="group" aria-label=${question}>
    <p><strong>${question}</strong></p>
    ${choices ? html`<${Field} id=${selectId} label=${choiceLabel} error=${error}>
      <select id=${selectId} value=${chosen} onChange=${(e) => { setChosen(e.currentTarget.value); setError(""); }}
        ...${invalid(selectId, error)}>
        <option value="">choose…</option>
        ${choices.map((c) => html`<option key=${c.code} value=${c.code}>${c.label}</option>`)}
      </select><//>` : null}
    ${children}
    <div class="row-actions">
      <button type="button" class="danger" onClick=${confirm}>${action}</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
    </div>
  </div>`;
}

// A form's or row's problem (problemInWords' answer): one that the request never reached the server
// clears itself when the connection is back (common.js's "capacity:online"), like the page's notice.
export const NO_PROBLEM = { fields: {}, general: "" };
export function useProblem() {
  const [problem, setProblem] = useState(NO_PROBLEM);
  useEffect(() => {
    if (!problem.network) return undefined;
    const clear = () => setProblem(NO_PROBLEM);
    window.addEventListener("capacity:online", clear);
    return () => window.removeEventListener("capacity:online", clear);
  }, [problem]);
  return [problem, setProblem];
}

// The attributes that tie a control to its Field's problem.
export const invalid = (id, error) => (error ? { "aria-invalid": "true", "aria-describedby": `${id}-error` } : {});

// What happened, kept until dismissed: [{key, text, tone}] newest first, in a polite live region that is
// always on the page (a region added with its text is not read out).
export function Messages({ items, dismiss, label = "Messages" }) {
  return html`<section class="messages" aria-label=${label}>
    <div role="status" aria-live="polite" id="messages"><ul>
      ${items.map((m) => html`<li key=${m.key} class=${`message ${m.tone || ""}`} data-message=${m.key}>
        <span>${m.text}</span>
        <button type="button" class="secondary dismiss" aria-label=${`Dismiss: ${m.text}`} onClick=${() => dismiss(m.key)}>Dismiss</button>
      </li>`)}
    </ul></div>
  </section>`;
}

// <option>s for a code set (GET /api/codes): value the code, text its label or what `text` makes of it.
export const options = (list, text = (c) => c.label) => list.map((c) => html`<option key=${c.code} value=${c.code}>${text(c)}</option>`);

// "1 minute", "3 minutes".
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
