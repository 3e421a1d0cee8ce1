// On a phone a table's rows are drawn as cards (app.css), one cell under another: each body cell is given
// its column's heading as data-label, which app.css shows above it. Every page loads this (base.html); it
// labels tables as they are drawn and redrawn, so no page has to.
function label(table) {
  const headings = [...(table.tHead?.rows[0]?.cells || [])].map((th) => th.textContent.trim());
  if (!headings.length) return;
  for (const body of table.tBodies) {
    for (const row of body.rows) {
      let column = 0;
      for (const cell of row.cells) {
        // A cell across several columns (a form under a row) is not one column's value.
        const text = cell.colSpan > 1 ? "" : headings[column] || "";
        if (cell.dataset.label !== text) cell.dataset.label = text;
        column += cell.colSpan;
      }
    }
  }
}

const labelAll = () => document.querySelectorAll("table").forEach(label);
new MutationObserver(labelAll).observe(document.body, { childList: true, subtree: true });
labelAll();
