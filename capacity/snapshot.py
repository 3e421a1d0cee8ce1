"""`capacity snapshot`: the live state on paper, for the 2 a.m. fallback when the service is down.

Run it on a schedule (every 15 minutes, say) and keep the files where the on-call bed manager can reach
them without the service: every unit with its figures and when they were last confirmed, the live holds,
and every running s135/s136 clock with its deadline, in London time. The HTML is one self-contained
page that prints on A4; the CSV holds the same rows for a spreadsheet. Person references are printed
(this is a clinical record, for person-level staff, kept as the service's data is kept), nothing else
about a person but age and sex.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from capacity.booking.detentions.episodes import current_legs
from capacity.booking.detentions.models import Episode
from capacity.booking.holds.models import Hold
from capacity.booking.placements.models import Placement
from capacity.booking.units.availability import figures
from capacity.booking.units.models import Provider, Unit
from capacity.db.engine import Database
from capacity.db.london import LONDON


def london(value: datetime | None) -> str:
    return value.astimezone(LONDON).strftime("%a %d %b %H:%M") if value else ""


@dataclass
class Snapshot:
    at: datetime
    units: list[list[str]]
    holds: list[list[str]]
    clocks: list[list[str]]

    UNIT_HEADER = ("unit", "provider", "kind", "status", "open", "occupied", "held", "available", "confirmed", "stale")
    HOLD_HEADER = ("unit", "person", "age", "sex", "purpose", "held since", "expires")
    CLOCK_HEADER = ("person", "age", "basis", "where", "clock started", "deadline", "extended", "breached")


async def take(db: Database) -> Snapshot:
    """Read the live state at one instant (a read transaction; nothing is written or audited)."""
    async with db.read() as reading:
        session, now = reading.session, reading.now
        rows = (
            await session.execute(
                select(Unit, Provider.name).join(Provider, Provider.id == Unit.provider_id).where(Unit.active)
            )
        ).all()
        units = [unit for unit, _ in rows]
        providers = {unit.id: name for unit, name in rows}
        names = {unit.id: unit.name for unit in units}
        found = await figures(reading, units)
        unit_rows = [
            [
                u.name,
                providers[u.id],
                u.kind,
                u.status,
                str(u.open_places),
                str(f.occupied),
                str(f.held),
                str(f.available),
                london(u.last_confirmed_at),
                "STALE" if f.stale else "",
            ]
            for u in sorted(units, key=lambda u: (u.kind, u.name))
            for f in (found[u.id],)
        ]
        holds = (
            await session.scalars(
                select(Hold).where(Hold.status == "held", Hold.expires_at > now).order_by(Hold.expires_at)
            )
        ).all()
        hold_rows = [
            [
                names.get(h.unit_id, h.unit_id),
                h.person_ref,
                str(h.person_age),
                h.person_sex,
                h.purpose,
                london(h.created_at),
                london(h.expires_at),
            ]
            for h in holds
        ]
        episodes = list(
            (await session.scalars(select(Episode).where(Episode.ended_at.is_(None)).order_by(Episode.deadline))).all()
        )
        legs = await current_legs(session, episodes)
        clock_rows = []
        for e in episodes:
            leg = legs[e.id]
            where = (
                names.get(leg.unit_id, leg.unit_id)
                if isinstance(leg, Placement)
                else (leg.place_name or leg.place_type.replace("_", " "))
            )
            if leg.ended_at is not None:
                where = f"in transit from {where}"
            clock_rows.append(
                [
                    leg.person_ref,
                    str(leg.person_age),
                    e.legal_basis,
                    where,
                    london(e.clock_started_at),
                    london(e.deadline),
                    f"+{e.extension_hours} h" if e.extension_hours else "",
                    "BREACHED" if e.breached_at else "",
                ]
            )
        return Snapshot(now, unit_rows, hold_rows, clock_rows)


def to_csv(snapshot: Snapshot) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["capacity snapshot", london(snapshot.at), "Europe/London"])
    for title, header, rows in _sections(snapshot):
        writer.writerow([])
        writer.writerow([title])
        writer.writerow(header)
        writer.writerows(rows)
    return out.getvalue()


def _sections(snapshot: Snapshot) -> list[tuple[str, tuple[str, ...], list[list[str]]]]:
    return [
        ("Units", Snapshot.UNIT_HEADER, snapshot.units),
        ("Live holds", Snapshot.HOLD_HEADER, snapshot.holds),
        ("Running s135/s136 clocks", Snapshot.CLOCK_HEADER, snapshot.clocks),
    ]


def to_html(snapshot: Snapshot) -> str:
    def table(title: str, header: tuple[str, ...], rows: list[list[str]]) -> str:
        head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        empty = f"<p>None at {html.escape(london(snapshot.at))}.</p>" if not rows else ""
        return f"<h2>{html.escape(title)}</h2>{empty}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    when = html.escape(london(snapshot.at))
    sections = "".join(table(*section) for section in _sections(snapshot))
    return f"""<!doctype html>
<html lang="en-GB"><head><meta charset="utf-8"><title>capacity snapshot {when}</title>
<style>
  body {{ font: 10pt/1.3 system-ui, sans-serif; margin: 1cm; }}
  h1 {{ font-size: 14pt; }} h2 {{ font-size: 12pt; margin-top: 1.2em; }}
  table {{ border-collapse: collapse; width: 100%; }}
  th, td {{ border: 1px solid #444; padding: 2px 4px; text-align: left; }}
  @page {{ size: A4 landscape; margin: 1cm; }}
</style></head>
<body><h1>capacity: the board at {when} (London time)</h1>
<p>Printed from the database, not live: phone a unit to confirm before sending anyone. Deadlines are
the law's; a clock keeps running while the service is down.</p>
{sections}
</body></html>
"""


def write(snapshot: Snapshot, directory: Path) -> tuple[Path, Path]:
    """Write `snapshot-<London time>.html` and `.csv` into `directory`; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"snapshot-{snapshot.at.astimezone(LONDON):%Y%m%d-%H%M}"
    page, sheet = stem.with_suffix(".html"), stem.with_suffix(".csv")
    page.write_text(to_html(snapshot), encoding="utf-8")
    sheet.write_text(to_csv(snapshot), encoding="utf-8", newline="")
    return page, sheet
