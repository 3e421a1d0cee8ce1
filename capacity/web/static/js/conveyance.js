// The conveyance crew's page: the held places they can see (their areas), each with its countdown, ETA
// and the conveyance form (mode, the times, ETA), kept current from the live stream like the AMHP's
// (holds.js has the list and the form both pages use).
import { connectEvents, loadCodes, londonTime, whoAmI } from "./common.js";
import { Countdown, html, mount } from "./view.js";
import { ConveyancePanel, ENDED, liveHolds } from "./holds.js";

const codes = await loadCodes();
const state = { announcement: "" };
let redraw = () => {};
const holds = liveHolds({ onChange: () => redraw() });

const ENDINGS = { "hold.declined": "was declined", "hold.expired": "has expired", "hold.arrived": "ended: the person has arrived",
  "hold.released": "was released" };

function HoldCard({ hold }) {
  const where = hold.unit_name || "the unit";
  const eta = hold.conveyance?.eta;
  return html`<article class="card" data-hold=${hold.id}>
    <h3>${hold.person.ref} → ${where}</h3>
    <p><strong><${Countdown} iso=${hold.expires_at} /></strong> left · held until ${londonTime(hold.expires_at)}
      · <span data-field="eta">${eta ? `ETA ${londonTime(eta)}` : "no ETA yet"}</span></p>
    <${ConveyancePanel} hold=${hold} holds=${holds} codes=${codes} />
  </article>`;
}

function App() {
  return html`
    <p id="announce" class="announce" role="status" aria-live="polite">${state.announcement}</p>
    <section class="card" aria-labelledby="holds-h"><h2 id="holds-h">Places held, to convey to</h2>
      ${holds.items.length ? holds.items.map((hold) => html`<${HoldCard} key=${hold.id} hold=${hold} />`)
        : html`<p class="empty">No place is held in your areas.</p>`}
    </section>`;
}

function onEvent(frame) {
  if (!frame.type.startsWith("hold.") && frame.type !== "conveyance.updated") return;
  const known = holds.items.find((h) => h.id === frame.data.hold_id);
  if (known && ENDED.has(frame.type)) {
    state.announcement = `The hold for ${known.person.ref} at ${known.unit_name || "the unit"} ${ENDINGS[frame.type]}.`;
  }
  holds.event(frame);
}

await whoAmI();
redraw = mount(document.getElementById("app"), App);
window.addEventListener("capacity:online", () => { holds.refresh().catch(() => {}); });
connectEvents({ onEvent, resync: () => holds.refresh() });
