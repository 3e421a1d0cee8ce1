// Crisis alternatives for a person no bed fits (API.md "Beyond beds"): what is open now for their age and
// home area, nearest first. The AMHP page asks for them when a search finds nothing free; the units search
// itself answers as it always has (and still records the unmet demand).
import { api } from "./common.js";
import { html } from "./view.js";

// A search finds nothing for this person when no unit it lists has a free place.
export const nothingFree = (units) => !units.some((unit) => unit.available > 0);

export function findAlternatives({ age, home_area: homeArea }) {
  const query = new URLSearchParams({ home_area: homeArea, open_now: "true" });
  if (age !== null && age !== undefined && age !== "") query.set("age", age);
  return api(`/api/alternatives?${query}`);
}

function Alternative({ item, codes }) {
  const where = item.distance_km === undefined ? "by phone" : `${item.distance_km} km`;
  return html`<li class="alternative">
    <strong>${item.name}</strong> (${codes.label("alternative_kinds", item.kind)}, ${where}):
    ${" "}${item.how_to_refer}
    ${item.phone ? html` <a href=${`tel:${item.phone.replace(/[^0-9+]/g, "")}`}>${item.phone}</a>` : null}
  </li>`;
}

// `items` as GET /api/alternatives answers them (open first, nearest first); `codes` from loadCodes().
export function Alternatives({ items, codes }) {
  return html`<section class="alternatives" aria-labelledby="alternatives-h">
    <h3 id="alternatives-h">Open now instead of a bed</h3>
    ${items.length
      ? html`<ul>${items.map((item) => html`<${Alternative} key=${item.id} item=${item} codes=${codes} />`)}</ul>`
      : html`<p class="empty">No crisis alternative for this person's age and area is open now.</p>`}
  </section>`;
}
