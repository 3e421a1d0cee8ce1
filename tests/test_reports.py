"""Reports: hand-computed figures on both engines, Europe/London nights across both clock changes,
disclosure control, scope, formats (JSON, CSV, XLSX read back) and the audit of every run.

Times below are UTC (`Z`); the comment beside each gives the Europe/London local time. In 2026 British
Summer Time starts at 2026-03-29 01:00Z and ends at 2026-10-25 01:00Z. A night counts on local date D
when the stay started on or before D and had not ended by local midnight starting D+1.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, select

from capacity.audit import AuditEntry
from capacity.booking.detentions.models import Episode, S136Detention
from capacity.booking.holds.models import Hold
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Area, AvailabilityDeclaration, Provider, Unit, UnmetDemand
from capacity.codes import ACUTE_KINDS, OapReason, values
from capacity.db.base import new_id
from capacity.reports import s136
from capacity.reports.common import Count, disclosed, exposed, protect
from capacity.reports.out_of_area import DISTANCE_BANDS, LENGTH_BANDS
from support.api import Api, assert_problem
from support.records import person_columns, placement_columns
from support.statements import Statements

BANES, BRISTOL = "E06000022", "E06000023"
MARCH = "from=2026-03-01&to=2026-03-31"
# Every person reference in this file starts so; none may appear in any report.
REF = "SECRET-REF-"
REPORTS = ("out-of-area", "s136", "capacity", "equality")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
async def reports(api: Api) -> Api:
    """The demo database without its demo placements, so that every figure here is computed by hand."""
    async with api.db.write_sessions() as session, session.begin():
        await session.execute(delete(Placement))
    return api


async def add(api: Api, *rows) -> None:
    async with api.db.write_sessions() as session, session.begin():
        session.add_all(rows)


def person(n: int | str, home: str = BANES, age: int = 40, sex: str = "male", ethnicity: str | None = "A") -> dict:
    return person_columns(f"{REF}{n}", age, sex, ethnicity, home)


async def placement(
    api: Api,
    unit_name: str,
    n,
    started: str,
    ended: str | None = None,
    *,
    home: str = BANES,
    oap_reason: str | None = None,
    distance: float = 100.0,
    legal_basis: str = "s2",
    **fields,
) -> Placement:
    unit = await api.unit(unit_name)
    people = {k: fields.pop(k) for k in ("age", "sex", "ethnicity") if k in fields}
    return Placement(
        **placement_columns(
            unit,
            t(started),
            person(n, home, **people),
            legal_basis=legal_basis,
            ended_at=t(ended) if ended else None,
            oap_reason=oap_reason,
            distance_km=distance,
            **fields,
        )
    )


def first_leg(clock: datetime, ended: datetime | None = None, outcome: str | None = None, **episode) -> dict:
    """A leg's fields that make it the first leg of its own episode (whose id it shares)."""
    hours = 24 + (episode.get("extension_hours") or 0)
    leg_id = new_id()
    opened = Episode(
        id=leg_id,
        legal_basis="s136",
        clock_started_at=clock,
        deadline=clock + timedelta(hours=hours),
        legs=1,
        ended_at=ended,
        outcome=outcome,
        extension_reason="condition_of_person" if episode.get("extension_hours") else None,
        **episode,
    )
    return {"id": leg_id, "episode": opened}


async def report(api: Api, name: str, query: str, as_: str = "commissioner", **kw) -> dict:
    response = await api.get(f"/api/reports/{name}?{query}", as_, **kw)
    assert response.status_code == 200, response.text
    assert REF not in response.text
    return response.json()


# --- out of area ------------------------------------------------------------------------------------


async def oap_history(api: Api) -> None:
    await add(
        api,
        # P1 Northfield acute (private, 750/night), inappropriate: Feb 20 to Mar 5 10:00 GMT.
        # March nights: Mar 1-4 = 4 (cost 3000); whole stay Feb 20 .. Mar 4 = 9 + 4 = 13 nights (8-14).
        await placement(
            api,
            "Northfield Park Hospital Acute",
            1,
            "2026-02-20T14:00",
            "2026-03-05T10:00",
            oap_reason="10",
            distance=120,
        ),
        # P2 Northfield PICU (private, 1050), inappropriate: Mar 28 20:00 GMT to 00:30 BST on Mar 30.
        # Nights Mar 28 and Mar 29 (it had not ended by 2026-03-29T23:00Z, midnight starting Mar 30) = 2
        # (cost 2100); in UTC dates it would be one. 2 nights: 1-7. Started in March at 150 km: 100-200.
        await placement(
            api,
            "Northfield Park Hospital PICU",
            2,
            "2026-03-28T20:00",
            "2026-03-29T23:30",
            oap_reason="10",
            distance=150,
        ),
        # P3 Hallam Street (NHS, 410), patient choice, from Mar 10, still there: Mar 10-31 = 22 nights,
        # 9020. 25 km is in 25-50 (lower bounds are inclusive).
        await placement(api, "Hallam Street", 3, "2026-03-10T09:00", oap_reason="14", distance=25.0),
        # P4 Northfield acute, safeguarding, since December: all 31 March nights, 23250; active at the end.
        await placement(api, "Northfield Park Hospital Acute", 4, "2025-12-01T12:00", oap_reason="11", distance=300),
        # P5 starts at 00:30 BST on April 1 (2026-03-31T23:30Z): not in March at all.
        await placement(api, "Hallam Street", 5, "2026-03-31T23:30", oap_reason="10", distance=10),
        # P6 Northfield PICU, not known: in and out on Mar 15, 0 nights (1-7), 350 km (300+).
        await placement(
            api,
            "Northfield Park Hospital PICU",
            6,
            "2026-03-15T10:00",
            "2026-03-15T18:00",
            oap_reason="99",
            distance=350,
        ),
        # Not OAPs of Bath and North East Somerset: a local ward, a crisis house (not an inpatient bed),
        # and (N3) a Bristol resident at Northfield from Mar 20: 12 March nights, 9000.
        await placement(api, "Hillview Lodge", 7, "2026-03-02T12:00"),
        await placement(api, "Birmingham Crisis House", 8, "2026-03-02T12:00"),
        await placement(
            api, "Northfield Park Hospital Acute", 9, "2026-03-20T12:00", home=BRISTOL, oap_reason="10", distance=140
        ),
    )


async def test_out_of_area_figures(reports: Api) -> None:
    api = reports
    await oap_history(api)
    api.clock.set(t("2026-04-15T12:00"))
    body = await report(api, "out-of-area", f"{MARCH}&area={BANES}")

    assert body["parameters"] == {
        "report": "out_of_area",
        "from": "2026-03-01",
        "to": "2026-03-31",
        "areas": BANES,
        "time_zone": "Europe/London",
        "generated_at": "2026-04-15T12:00:00+00:00",
    }
    # started P2 P3 P6; ended P1 P2 P6; active P3 P4; bed days 4 + 2 + 22 + 31 + 0 = 59;
    # cost 3000 + 2100 + 9020 + 23250 = 37370; 37370 / 59 = 633.39; private (Northfield) 4 + 2 + 31 = 37.
    assert body["totals"] == {
        "started": 3,
        "ended": 3,
        "active_at_end": 2,
        "bed_days": 59,
        "cost": 37370.0,
        "average_cost_per_bed_day": 633.39,
        "private_bed_days": 37,
        "private_share": round(37 / 59, 4),
    }
    # Inappropriate (reason 10): P1 and P2.
    assert body["inappropriate"] == {"started": 1, "ended": 2, "active_at_end": 0, "bed_days": 6, "cost": 5100.0}
    assert body["appropriate"] == {"started": 2, "ended": 1, "active_at_end": 2, "bed_days": 53, "cost": 32270.0}
    figures = ("started", "ended", "active_at_end", "bed_days", "cost")
    assert [(r["reason"], *(r[f] for f in figures)) for r in body["by_reason"]] == [
        ("10", 1, 2, 0, 6, 5100.0),
        ("11", 0, 0, 1, 31, 23250.0),
        ("14", 1, 0, 1, 22, 9020.0),
        ("99", 1, 1, 0, 0, 0.0),
    ]
    assert [(r["name"][:13], r["sector"], *(r[f] for f in figures)) for r in body["by_receiving_provider"]] == [
        ("Black Country", "nhs", 1, 0, 1, 22, 9020.0),  # P3
        ("Northfield Pa", "private", 2, 3, 1, 37, 28350.0),  # P1 P2 P4 P6: 3000 + 2100 + 23250
    ]
    assert [(r["kind"], *(r[f] for f in figures)) for r in body["by_bed_type"]] == [
        ("acute_adult", 1, 1, 2, 57, 35270.0),  # P1 P3 P4
        ("picu", 2, 2, 0, 2, 2100.0),  # P2 P6
    ]
    assert [(r["area_code"], r["bed_days"]) for r in body["by_sending_area"]] == [(BANES, 59)]
    # Ended in March: P1 13 nights, P2 2, P6 0.
    assert body["length_bands"] == {"1-7": 2, "8-14": 1, "15-30": 0, "31-90": 0, "91+": 0}
    # Started in March: P2 150 km, P3 25 km, P6 350 km.
    assert body["distance_bands"] == {
        "<25": 0,
        "25-50": 1,
        "50-100": 0,
        "100-200": 1,
        "200-300": 0,
        "300+": 1,
        "not_known": 0,
    }

    # A commissioner who names no area gets all of theirs (only BANES); an admin who names none, all areas:
    # N3 adds 1 start and 12 nights at 750.
    assert (await report(api, "out-of-area", MARCH))["totals"] == body["totals"]
    everyone = await report(api, "out-of-area", MARCH, "admin")
    assert everyone["parameters"]["areas"] == "all"
    assert (everyone["totals"]["started"], everyone["totals"]["bed_days"], everyone["totals"]["cost"]) == (
        4,
        71,
        37370.0 + 9000,
    )
    assert [(r["area_code"], r["started"], r["bed_days"]) for r in everyone["by_sending_area"]] == [
        (BANES, 3, 59),
        (BRISTOL, 1, 12),
    ]

    # While the period is still running, only nights that have passed count: at 12:00 BST on March 31,
    # P3 has had Mar 10-30 (21 nights), P4 Mar 1-30 (30), the others as before: 4 + 2 + 21 + 30 + 0 = 57.
    api.clock.set(t("2026-03-31T11:00"))
    assert (await report(api, "out-of-area", MARCH))["totals"]["bed_days"] == 57


@pytest.mark.parametrize(
    ("query", "started", "bed_days"),
    [
        # 2026-10-24T23:30Z is 00:30 BST on October 25, the night the clocks go back.
        ("from=2026-10-25&to=2026-10-25", 1, 1),
        ("from=2026-10-01&to=2026-10-24", 0, 0),
        # It ended at 00:30 GMT on the 26th, so it was there on the night of the 25th only (1 night, 1050),
        # though its UTC dates (24th to 26th) span two.
        ("from=2026-10-01&to=2026-10-31", 1, 1),
    ],
)
async def test_nights_across_the_october_clock_change(reports: Api, query: str, started: int, bed_days: int) -> None:
    api = reports
    await add(
        api,
        await placement(
            api, "Northfield Park Hospital PICU", 1, "2026-10-24T23:30", "2026-10-26T00:30", oap_reason="10"
        ),
    )
    api.clock.set(t("2026-11-02T12:00"))
    totals = (await report(api, "out-of-area", query))["totals"]
    assert (totals["started"], totals["bed_days"], totals["cost"]) == (started, bed_days, 1050.0 * bed_days)
    ended = 1 if query.endswith("2026-10-31") else 0
    assert totals["ended"] == ended


# A plain reference for the out-of-area report, row by row in Python, on a seeded random history.
LONDON = ZoneInfo("Europe/London")
# Instants where a rule changes: local midnights either side of both 2026 clock changes, the period's
# bounds, and the instant just before one.
EDGES = [
    t("2026-02-28T23:59:59"),
    t("2026-03-01T00:00"),
    t("2026-03-28T00:00"),
    t("2026-03-29T00:00"),
    t("2026-03-29T23:00"),
    t("2026-03-30T23:00"),
    t("2026-03-31T22:59:59"),
    t("2026-03-31T23:00"),
    t("2026-04-01T00:00"),
]


def random_history(rnd: random.Random, units: list[Unit], homes: list[str]) -> list[dict]:
    """Placements' fields."""
    inpatient = [u for u in units if u.kind in ACUTE_KINDS]
    found = []
    for n in range(150):
        unit = rnd.choice(inpatient if rnd.random() < 0.8 else units)
        home = BANES if rnd.random() < 0.4 else rnd.choice(homes)  # enough for a one-area report
        started = (
            rnd.choice(EDGES)
            if rnd.random() < 0.2
            else t("2026-01-10T00:00") + timedelta(minutes=rnd.randrange(100 * 24 * 60))
        )
        if rnd.random() < 0.25:
            ended = None
        elif rnd.random() < 0.2:
            ended = rnd.choice([e for e in EDGES if e >= started] or [started])
        else:
            ended = started + timedelta(minutes=rnd.randrange(50 * 24 * 60))
        distance = rnd.choice([None, 0.0, 24.99, 25.0, 50.0, 100.0, 199.9, 200.0, 300.0, rnd.uniform(0, 400)])
        # 77 and none are not codes: the report counts them as not recorded.
        oap_reason = rnd.choice([None, "77", *values(OapReason)])
        daily_cost = rnd.choice([unit.daily_cost, rnd.randrange(10_000, 120_000) / 100])
        someone = person(n, home, age=rnd.randint(18, 90))
        found.append(
            placement_columns(
                unit,
                started,
                someone,
                legal_basis="s2",
                ended_at=ended,
                oap_reason=oap_reason,
                distance_km=distance,
                daily_cost=daily_cost,
            )
        )
    return found


def reference_report(
    placements: list[dict],
    units: dict[str, Unit],
    providers: dict[str, Provider],
    area_names: dict[str, str],
    areas: set[str] | None,
    first: date,
    last: date,
) -> dict:
    """The out-of-area report's figures by DOMAIN.md, for a period that is over."""
    start = datetime.combine(first, time(0), LONDON).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), LONDON).astimezone(UTC)

    def local_date(instant: datetime) -> date:
        return instant.astimezone(LONDON).date()

    def last_night(ended: datetime | None) -> date:  # the day after the last night counted
        return last + timedelta(days=1) if ended is None else local_date(ended - timedelta(microseconds=1))

    def band(value: float, bounds: tuple, names: tuple) -> str:
        return next((name for bound, name in zip(bounds, names[:-1], strict=True) if value < bound), names[-1])

    rows = []
    for p in placements:
        unit = units[p["unit_id"]]
        if not p["out_of_area"] or unit.kind not in ACUTE_KINDS or (areas is not None and p["home_area"] not in areas):
            continue
        if p["started_at"] >= end or (p["ended_at"] is not None and p["ended_at"] < start):
            continue
        nights = max(
            0, (min(last_night(p["ended_at"]), last + timedelta(days=1)) - max(local_date(p["started_at"]), first)).days
        )
        provider = providers[unit.provider_id]
        rows.append(
            dict(
                reason=p["oap_reason"] if p["oap_reason"] in values(OapReason) else "not_recorded",
                area=(p["home_area"], area_names[p["home_area"]]),
                provider=(provider.id, provider.name, provider.sector),
                kind=unit.kind,
                started=int(start <= p["started_at"] < end),
                ended=int(p["ended_at"] is not None and start <= p["ended_at"] < end),
                active_at_end=int(p["ended_at"] is None or p["ended_at"] > end),
                bed_days=nights,
                cost=nights * p["daily_cost"],
                private=nights if provider.sector == "private" else 0,
                inappropriate=p["oap_reason"] == "10",
                length=None
                if p["ended_at"] is None
                else max(0, (last_night(p["ended_at"]) - local_date(p["started_at"])).days),
                distance=p["distance_km"],
            )
        )

    def figures(of: list[dict]) -> dict:
        return {
            "started": sum(r["started"] for r in of),
            "ended": sum(r["ended"] for r in of),
            "active_at_end": sum(r["active_at_end"] for r in of),
            "bed_days": sum(r["bed_days"] for r in of),
            "cost": round(sum(r["cost"] for r in of), 2),
        }

    def by(key: str) -> dict:
        return {k: figures([r for r in rows if r[key] == k]) for k in {r[key] for r in rows}}

    totals = figures(rows)
    private = sum(r["private"] for r in rows)
    lengths = [band(r["length"], (8, 15, 31, 91), LENGTH_BANDS) for r in rows if r["ended"]]
    distances = [
        "not_known" if r["distance"] is None else band(r["distance"], (25, 50, 100, 200, 300), DISTANCE_BANDS)
        for r in rows
        if r["started"]
    ]
    inappropriate = figures([r for r in rows if r["inappropriate"]])
    return {
        "totals": {
            **totals,
            "average_cost_per_bed_day": round(totals["cost"] / totals["bed_days"], 2) if totals["bed_days"] else None,
            "private_bed_days": private,
            "private_share": round(private / totals["bed_days"], 4) if totals["bed_days"] else None,
        },
        "inappropriate": inappropriate,
        "appropriate": figures([r for r in rows if not r["inappropriate"]]),
        "by_reason": by("reason"),
        "by_sending_area": by("area"),
        "by_receiving_provider": by("provider"),
        "by_bed_type": by("kind"),
        "length_bands": {b: lengths.count(b) for b in LENGTH_BANDS},
        "distance_bands": {b: distances.count(b) for b in (*DISTANCE_BANDS, "not_known")},
    }


def keyed(body: dict) -> dict:
    """The report's breakdowns as {key: figures}, so that they compare with the reference's."""
    figures = ("started", "ended", "active_at_end", "bed_days", "cost")
    keys = {
        "by_reason": lambda r: r["reason"],
        "by_sending_area": lambda r: (r["area_code"], r["name"]),
        "by_receiving_provider": lambda r: (r["provider_id"], r["name"], r["sector"]),
        "by_bed_type": lambda r: r["kind"],
    }
    return {
        **body,
        **{name: {key(r): {f: r[f] for f in figures} for r in body[name]} for name, key in keys.items()},
    }


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_out_of_area_report_is_one_statement_with_the_reference_figures(reports: Api, seed: int) -> None:
    """Issue 15: the whole report reads placements in one statement, and on a random history (with stays
    across both clock changes, ending on local midnights, bands' bounds, costs in pence, reasons that are
    not codes) its every figure is what the row-by-row reference computes, for one area and for all."""
    api = reports
    async with api.db.read_sessions() as session:
        units = {u.id: u for u in (await session.scalars(select(Unit))).all()}
        providers = {p.id: p for p in (await session.scalars(select(Provider))).all()}
        area_names = dict((await session.execute(select(Area.code, Area.name))).all())
    history = random_history(random.Random(seed), sorted(units.values(), key=lambda u: u.id), sorted(area_names))
    await add(api, *(Placement(**fields) for fields in history))
    api.clock.set(t("2026-04-20T12:00"))
    first, last = date(2026, 3, 1), date(2026, 3, 31)

    for area, as_ in ((BANES, "commissioner"), (None, "admin")):
        statements = Statements(api)
        body = await report(api, "out-of-area", MARCH + (f"&area={area}" if area else ""), as_)
        assert len(statements.naming("placements")) == 1, statements.sent
        want = reference_report(history, units, providers, area_names, None if area is None else {area}, first, last)
        got = keyed(body)
        for section, figures in want.items():
            assert got[section] == figures, section
        assert body["totals"]["started"] > 0 and len(body["by_reason"]) > 2  # not empty where it counts


# --- s136 -------------------------------------------------------------------------------------------


async def s136_history(api: Api) -> None:
    async def hold(n: int, age: int, sex: str, ethnicity: str | None) -> str:
        someone = {"ref": f"{REF}{n}", "age": age, "sex": sex, "home_area": BANES}
        if ethnicity:
            someone["ethnicity"] = ethnicity
        response = await api.hold("Bristol Place of Safety", someone)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def convey_and_arrive(hold_id: str, conveyance: dict, arrive_at: str, arrival: dict) -> str:
        """The hold's conveyance recorded now, then its arrival at `arrive_at`: the placement's id."""
        conveyed = await api.put(f"/api/holds/{hold_id}/conveyance", "amhp", json=conveyance)
        assert conveyed.status_code == 200, conveyed.text
        api.clock.set(t(arrive_at))
        arrived = await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json=arrival)
        assert arrived.status_code == 201, arrived.text
        return arrived.json()["id"]

    async def discharge(placement_id: str, at: str, outcome: str) -> None:
        api.clock.set(t(at))
        done = await api.post(f"/api/placements/{placement_id}/discharge", "bedmanager", json={"outcome": outcome})
        assert done.status_code == 200, done.text

    # D1 through the API: Tuesday Mar 10, clock from 01:30 GMT (out of hours); ambulance requested 01:40,
    # at scene 02:05 (25 minutes, within 30); arrived 02:30; discharged 12:30: 11 hours, admitted informally.
    api.clock.set(t("2026-03-10T02:00"))
    d1 = await hold(1, 30, "female", "A")
    api.clock.set(t("2026-03-10T02:10"))
    ambulance = {"mode": "ambulance", "requested_at": "2026-03-10T01:40:00Z", "at_scene_at": "2026-03-10T02:05:00Z"}
    arrival = {"s136_clock_started_at": "2026-03-10T01:30:00Z"}
    placed = await convey_and_arrive(d1, ambulance, "2026-03-10T02:30", arrival)
    await discharge(placed, "2026-03-10T12:30", "admitted_informal")

    # D2 through the API: a 17-year-old, Wednesday Mar 11 10:20 GMT (in hours), by police vehicle; a 6-hour
    # extension; discharged after 28 hours (deadline 10:20 + 24 + 6 h: no breach), detained under s2.
    api.clock.set(t("2026-03-11T10:00"))
    d2 = await hold(2, 17, "male", None)
    police = {
        "mode": "police_vehicle",
        "police_vehicle_reason": "no_ambulance_available",
        "police_vehicle_note": "John Smith, 12 Acacia Avenue, said the crew was 2 h away",
    }
    placed = await convey_and_arrive(d2, police, "2026-03-11T10:20", {})
    api.clock.set(t("2026-03-12T09:00"))
    extension = {"hours": 6, "authorised_by": "Dr Example", "reason": "condition_of_person"}
    extended = await api.post(f"/api/placements/{placed}/s136-extension", "amhp", json=extension)
    assert extended.status_code == 200, extended.text
    await discharge(placed, "2026-03-12T14:20", "detained_s2")

    # D4 through the API: an emergency department, Friday Mar 20 15:00 GMT (in hours), 6 hours; ambulance
    # requested 14:00, at scene 14:50 (50 minutes: outside the standard).
    api.clock.set(t("2026-03-20T21:00"))
    recorded = await api.post(
        "/api/s136-detentions",
        "amhp",
        json={
            "place_type": "emergency_department",
            "detained_at": "2026-03-20T15:00:00Z",
            "person": {"ref": f"{REF}4", "age": 22, "sex": "female", "ethnicity": "A", "home_area": BANES},
            "conveyance_mode": "ambulance",
            "ambulance_requested_at": "2026-03-20T14:00:00Z",
            "ambulance_at_scene_at": "2026-03-20T14:50:00Z",
            "ended_at": "2026-03-20T21:00:00Z",
            "outcome": "referred_community",
        },
    )
    assert recorded.status_code == 201, recorded.text

    def detention(n, place_type: str, detained: str, ended: str | None, home: str = BANES, **fields):
        people = {k: fields.pop(k) for k in ("age", "sex", "ethnicity") if k in fields}
        clock = {k: fields.pop(k) for k in ("extension_hours", "extension_authorised_by", "breached_at") if k in fields}
        return S136Detention(
            place_type=place_type,
            detained_at=t(detained),
            ended_at=t(ended) if ended else None,
            created_by="test",
            created_at=t(detained),
            **first_leg(t(detained), t(ended) if ended else None, fields.get("outcome"), **clock),
            **person(n, home, **people),
            **fields,
        )

    await add(
        api,
        # D3: Saturday Mar 14 20:00 GMT at the suite (out of hours), 25 hours: breached; no conveyance recorded.
        await placement(
            api,
            "Bristol Place of Safety",
            3,
            "2026-03-14T20:00",
            "2026-03-15T21:00",
            legal_basis="s136",
            **first_leg(t("2026-03-14T20:00"), t("2026-03-15T21:00"), "discharged", breached_at=t("2026-03-15T20:00")),
            outcome="discharged",
            age=45,
            ethnicity="J",
        ),
        # D5: police station, Sunday Mar 29 00:30 GMT (out of hours; BST starts at 01:00Z), 10 hours, police
        # vehicle; the same person as D4 nine days before: a repeat.
        detention(
            4,
            "police_station",
            "2026-03-29T00:30",
            "2026-03-29T10:30",
            outcome="discharged",
            age=30,
            sex="female",
            conveyance_mode="police_vehicle",
            police_vehicle_reason="no_ambulance_available",
            police_vehicle_note='=HYPERLINK("http://example.invalid")',
            police_station_criteria=["imminent_risk_of_serious_injury_or_death"],
            authorising_inspector="Insp. Example",
        ),
        # D6: 00:30 BST on April 1: not March.
        detention(6, "other", "2026-03-31T23:30", None),
        # D7: emergency department, Monday Mar 30 09:30 BST (in hours; 08:30 in UTC would be out of hours);
        # still detained, extended and breached; a 16-year-old with no ethnic category.
        detention(
            7,
            "emergency_department",
            "2026-03-30T08:30",
            None,
            age=16,
            ethnicity=None,
            extension_hours=12,
            extension_authorised_by="Dr Example",
            breached_at=t("2026-03-31T20:30"),
        ),
        # History: D1's person was detained 2025-06-01 (within the year before: D1 is a repeat); D4's on
        # 2025-03-19 15:00, a day more than a year before 2026-03-20 15:00 (D4 is not a repeat).
        detention(1, "emergency_department", "2025-06-01T12:00", "2025-06-01T20:00", outcome="discharged"),
        detention(4, "emergency_department", "2025-03-19T15:00", "2025-03-19T20:00", outcome="discharged"),
        # Another area's detention, with the same reference as D1: not Bath and North East Somerset's.
        detention(1, "emergency_department", "2026-03-05T12:00", None, home=BRISTOL),
    )


async def test_s136_figures(reports: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = reports
    await s136_history(api)
    api.clock.set(t("2026-04-15T12:00"))
    published = await report(api, "s136", f"{MARCH}&area={BANES}")
    # The figures as counted, before disclosure control (every count shown as it is).
    monkeypatch.setattr(Count, "shown", property(lambda count: count.value))
    body = await report(api, "s136", f"{MARCH}&area={BANES}")
    # D1 D2 D3 D4 D5 D7: 6 detentions, 5 ended; under 18 D2 D7; breaches D3 D7; extensions D2 D7;
    # out of hours D1 D3 D5; repeats D1 D5.
    assert body["totals"] == {
        "detentions": 6,
        "ended": 5,
        "under_18": 2,
        "under_18_in_police_station": 0,
        "breaches": 2,
        "extensions": 2,
        "out_of_hours": 3,
        "out_of_hours_share": 0.5,
        "repeat_detentions": 2,
        "repeat_share": round(2 / 6, 4),
        "transfers": 0,
        "transferred": 0,
        # Ended "discharged" (no admission, no referral): D3 and D5, of the 5 that ended.
        "no_further_action": 2,
        "no_further_action_share": 0.4,
    }
    # No detention here moved between places (the transfer cases are in tests/test_episodes.py); D4 spent
    # its 6 hours in an emergency department (D7 is still there).
    assert body["to_health_based_place_of_safety"] == {"measured": 0, "median_minutes": None, "p90_minutes": None}
    assert body["emergency_department_hours"] == {"measured": 1, "median": 6.0, "p90": 6.0}
    assert body["by_place_of_safety"] == {
        "health_based_place_of_safety": 3,
        "other_health_setting": 0,
        "emergency_department": 2,
        "police_station": 1,
        "other": 0,
    }
    # Ended durations 6 (D4), 10 (D5), 11 (D1), 25 (D3), 28 (D2) hours. Nearest rank, n = 5: the median
    # is rank ceil(2.5) = 3 (11 h), the 90th percentile rank ceil(4.5) = 5 (28 h).
    assert body["duration_hours"] == {"ended": 5, "median": 11.0, "p90": 28.0}
    assert body["conveyance"] == {
        "ambulance": 2,
        "police_vehicle": 2,
        "secure_transport": 0,
        "other": 0,
        "not_recorded": 2,
    }
    # Codes only: the notes beside them (a name, a formula) never reach a report.
    assert body["police_vehicle_reasons"] == [
        {"reason": "no_ambulance_available", "count": 2},
        {"reason": "ambulance_delayed", "count": 0},
        {"reason": "risk_of_violence", "count": 0},
        {"reason": "other", "count": 0},
        {"reason": "not_recorded", "count": 0},
    ]
    assert "Acacia" not in str(body) and "HYPERLINK" not in str(body)
    # Responses 25 (D1) and 50 (D4) minutes: median rank ceil(1) = 1, p90 rank ceil(1.8) = 2.
    assert body["ambulance_response"] == {
        "standard_minutes": 30,
        "measured": 2,
        "median_minutes": 25.0,
        "p90_minutes": 50.0,
        "within_standard": 1,
        "within_standard_share": 0.5,
    }
    assert body["outcomes"] == {
        "admitted_informal": 1,
        "detained_s2": 1,
        "detained_s3": 0,
        "discharged": 2,
        "referred_community": 1,
        "other": 0,
        "not_recorded": 0,
        "ongoing": 1,
    }

    # As published: every count is of the same 6 people, every one of 1 to 7, so each is "*" (shares of
    # a "*" are not given); zeros are shown.
    assert published["totals"] == {
        **{name: "*" for name in ("detentions", "ended", "under_18", "breaches", "extensions", "out_of_hours")},
        **{name: "*" for name in ("repeat_detentions", "no_further_action")},
        "under_18_in_police_station": 0,
        "transfers": 0,
        "transferred": 0,
        **{name: None for name in ("out_of_hours_share", "repeat_share", "no_further_action_share")},
    }
    assert published["by_place_of_safety"] == {key: n and "*" for key, n in body["by_place_of_safety"].items()}
    assert published["outcomes"] == {key: n and "*" for key, n in body["outcomes"].items()}
    assert published["ambulance_response"]["within_standard_share"] is None
    assert published["duration_hours"] == {"ended": "*", "median": 11.0, "p90": 28.0}
    monkeypatch.undo()

    # Equality: the same 6 detentions; every non-zero cell is 1-7, so all are suppressed, the total too.
    equality = await report(api, "equality", f"{MARCH}&area={BANES}")
    detentions = equality["detentions"]
    assert detentions["total"] == "*"
    assert {k: v for k, v in detentions["by_ethnicity"].items() if v} == {"A": "*", "J": "*", "not_known": "*"}
    assert detentions["by_sex"] == {"female": "*", "male": "*", "other": 0, "unknown": 0}
    assert detentions["by_age_band"] == {
        "0-17": "*",
        "18-24": "*",
        "25-34": "*",
        "35-44": 0,
        "45-54": "*",
        "55-64": 0,
        "65+": 0,
    }
    # Placements started in March: D1, D2, D3.
    assert equality["placements"]["total"] == "*"


async def test_s136_detentions_are_the_episodes_whose_clock_started_in_the_period(
    reports: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: the report reads the period's episodes (and a person's earlier ones), never all history,
    in one statement, and each episode with all its legs: one that began in February and went on into
    March is February's; one whose clock started on March 31 is March's, with its legs that ended in April
    or began there."""
    api = reports
    suite = await api.unit("Bristol Place of Safety")

    def at_ed(n: int, detained: str, ended: str, outcome: str, episode: Episode) -> S136Detention:
        """The episode's first leg, at an emergency department."""
        return S136Detention(
            id=episode.id,
            episode=episode,
            place_type="emergency_department",
            detained_at=t(detained),
            ended_at=t(ended),
            outcome=outcome,
            created_by="test",
            created_at=t(detained),
            **person(n),
        )

    def episode(clock: str, ended: str, outcome: str, legs: int) -> Episode:
        return Episode(
            id=new_id(), legal_basis="s136", clock_started_at=t(clock), deadline=t(clock) + timedelta(hours=24),
            legs=legs, ended_at=t(ended), outcome=outcome,
        )  # fmt: skip

    def at_suite(n: int, started: str, ended: str, outcome: str, of: Episode, first: bool = False) -> Placement:
        leg = {"id": of.id} if first else {}
        columns = placement_columns(suite, t(started), person(n), legal_basis="s136", ended_at=t(ended))
        return Placement(**{**columns, **leg, "outcome": outcome, "episode": of})

    # A: Saturday Feb 28 22:00 GMT at an emergency department, then the suite from 03:30 on March 1 to 10:00.
    a = episode("2026-02-28T22:00", "2026-03-01T10:00", "discharged", legs=2)
    # B: the same person on Tuesday March 10, 12:00-18:00 GMT at an emergency department: a repeat of A.
    b = episode("2026-03-10T12:00", "2026-03-10T18:00", "discharged", legs=1)
    # C: 22:30 BST on Tuesday March 31 at an emergency department until 03:00 BST on April 1, then the suite
    # from 03:30 BST to 13:00 BST: March's, with both legs, the second begun and both ended in April.
    c = episode("2026-03-31T21:30", "2026-04-01T12:00", "detained_s2", legs=2)
    # D: the clock started at 23:00 BST on March 31 (the constable kept the person there); arrival at the
    # suite at 01:30 BST on April 1, until 09:00 BST: March's, by its clock.
    d = episode("2026-03-31T22:00", "2026-04-01T08:00", "discharged", legs=1)
    await add(
        api,
        at_ed(0, "2026-02-28T22:00", "2026-03-01T03:00", "transferred", a),
        at_suite(0, "2026-03-01T03:30", "2026-03-01T10:00", "discharged", a),
        at_ed(0, "2026-03-10T12:00", "2026-03-10T18:00", "discharged", b),
        at_ed(1, "2026-03-31T21:30", "2026-04-01T02:00", "transferred", c),
        at_suite(1, "2026-04-01T02:30", "2026-04-01T12:00", "detained_s2", c),
        at_suite(2, "2026-04-01T00:30", "2026-04-01T08:00", "discharged", d, first=True),
    )
    api.clock.set(t("2026-04-15T12:00"))
    monkeypatch.setattr(Count, "shown", property(lambda count: count.value))
    monkeypatch.setattr(s136, "disclosed", lambda count: count)
    statements = Statements(api)
    march = await report(api, "s136", f"{MARCH}&area={BANES}")
    assert len(statements.naming("detention_episodes")) == 1, statements.sent
    assert {k: v for k, v in march["totals"].items() if v} == {
        "detentions": 3,
        "ended": 3,
        "out_of_hours": 2,  # C and D
        "out_of_hours_share": round(2 / 3, 4),
        "repeat_detentions": 1,  # B
        "repeat_share": round(1 / 3, 4),
        "transfers": 1,
        "transferred": 1,
        "no_further_action": 2,
        "no_further_action_share": round(2 / 3, 4),
    }
    assert {k: v for k, v in march["by_place_of_safety"].items() if v} == {
        "health_based_place_of_safety": 1,
        "emergency_department": 2,
    }
    # Durations 6 (B), 10 (D) and 14.5 (C) hours; C reached the suite 5 hours after its clock started;
    # hours in an emergency department: C 4.5, B 6.
    assert march["duration_hours"] == {"ended": 3, "median": 10.0, "p90": 14.5}
    assert march["to_health_based_place_of_safety"] == {"measured": 1, "median_minutes": 300.0, "p90_minutes": 300.0}
    assert march["emergency_department_hours"] == {"measured": 2, "median": 4.5, "p90": 6.0}
    assert {k: v for k, v in march["outcomes"].items() if v} == {"discharged": 2, "detained_s2": 1}

    february = await report(api, "s136", f"from=2026-02-01&to=2026-02-28&area={BANES}")
    assert {k: v for k, v in february["totals"].items() if v} == {
        "detentions": 1,
        "ended": 1,
        "out_of_hours": 1,
        "out_of_hours_share": 1.0,
        "transfers": 1,
        "transferred": 1,
        "no_further_action": 1,
        "no_further_action_share": 1.0,
    }
    assert february["to_health_based_place_of_safety"] == {
        "measured": 1,
        "median_minutes": 330.0,
        "p90_minutes": 330.0,
    }
    assert february["emergency_department_hours"] == {"measured": 1, "median": 5.0, "p90": 5.0}
    # The equality report counts the same detentions, in one statement with the period's placements.
    statements = Statements(api)
    equality = await report(api, "equality", f"{MARCH}&area={BANES}")
    assert len(statements.naming("detention_episodes")) == 1, statements.sent
    assert equality["detentions"]["total"] == 3
    assert equality["placements"]["total"] == 1  # A's suite leg: D's and C's began in April


# --- capacity ---------------------------------------------------------------------------------------


async def test_capacity_figures(reports: Api) -> None:
    api = reports
    crisis, ward = await api.unit("Bath Crisis House"), await api.unit("Hillview Lodge")

    def declared(unit, at: str, places: int, status: str = "open") -> AvailabilityDeclaration:
        return AvailabilityDeclaration(
            unit_id=unit.id,
            declared_at=t(at),
            declared_by="test",
            after_open_places=places,
            after_status=status,
            closed_reason="staffing" if status == "closed" else None,
        )

    def hold(
        n, created: str, status: str, *, ended: str | None = None, expires: str | None = None, home: str = BANES
    ) -> Hold:
        return Hold(
            unit_id=crisis.id,
            status=status,
            purpose="crisis",
            created_by="test",
            created_at=t(created),
            expires_at=t(expires) if expires else t(created) + timedelta(hours=4),
            ended_at=t(ended) if ended else None,
            **person(n, home),
        )

    def unmet(at: str, source: str, kind: str | None, home: str = BANES) -> UnmetDemand:
        return UnmetDemand(at=t(at), source=source, kind=kind, home_area=home)

    # The demo data declared every unit open with its places (crisis house 6, Hillview 16, older adult ward
    # 14) at 2026-01-31T09:00Z, thirty days before it confirmed them at 2026-03-02T09:00Z.
    await add(
        api,
        declared(crisis, "2026-02-01T10:00", 4),
        declared(crisis, "2026-03-10T12:00", 6, "closed"),
        declared(crisis, "2026-03-10T18:00", 5),  # the same day: the closure counts for no night
        declared(crisis, "2026-03-28T23:30", 3),  # 23:30 GMT on Mar 28
        declared(crisis, "2026-03-29T23:30", 2),  # 00:30 BST on Mar 30
        declared(ward, "2026-03-20T08:00", 0, "closed"),
        declared(ward, "2026-03-25T08:00", 16),
        # Occupied nights at the crisis house: Mar 5-11 (7); Mar 29-30 (2); a Bristol resident Mar 1-2 (2).
        await placement(api, "Bath Crisis House", 1, "2026-03-05T15:00", "2026-03-12T10:00"),
        await placement(api, "Bath Crisis House", 2, "2026-03-29T20:00", "2026-03-31T08:00"),
        await placement(api, "Bath Crisis House", 3, "2026-02-25T12:00", "2026-03-03T12:00", home=BRISTOL),
        # Hillview: there since January (31 nights), and from 23:30 BST on Mar 31 (1 night).
        await placement(api, "Hillview Lodge", 4, "2026-01-10T12:00"),
        await placement(api, "Hillview Lodge", 5, "2026-03-31T22:30"),
        # Holds created in March for BANES residents: arrivals after 60, 45 and 120 minutes; one released,
        # one declined, one expired, one still `held` after its expiry (expired), one still live (held).
        hold(1, "2026-03-05T14:00", "arrived", ended="2026-03-05T15:00"),
        hold(2, "2026-03-29T19:15", "arrived", ended="2026-03-29T20:00"),
        hold(3, "2026-03-12T10:00", "arrived", ended="2026-03-12T12:00"),
        hold(4, "2026-03-13T10:00", "released", ended="2026-03-13T11:00"),
        hold(5, "2026-03-14T10:00", "declined", ended="2026-03-14T10:10"),
        hold(6, "2026-03-15T10:00", "expired", ended="2026-03-15T14:00"),
        hold(7, "2026-03-20T10:00", "held"),
        hold(8, "2026-03-31T10:00", "held", expires="2026-04-20T10:00"),
        # Not counted: another area's, February's, and one at 00:30 BST on April 1.
        hold(9, "2026-03-20T10:00", "released", ended="2026-03-20T11:00", home=BRISTOL),
        hold(10, "2026-02-28T10:00", "released", ended="2026-02-28T11:00"),
        hold(11, "2026-03-31T23:30", "released", ended="2026-04-01T00:00"),
        # Unmet demand: local hours 10, 0 (GMT), 2 (02:30 BST) and 18 (18:10 BST); then two not counted.
        unmet("2026-03-03T10:15", "search", "crisis_house"),
        unmet("2026-03-29T00:30", "search", None),
        unmet("2026-03-29T01:30", "hold", "acute_adult"),
        unmet("2026-03-30T17:10", "hold", "acute_adult"),
        unmet("2026-03-20T10:00", "hold", "acute_adult", home=BRISTOL),
        unmet("2026-03-31T23:30", "search", "crisis_house"),
    )
    api.clock.set(t("2026-04-15T12:00"))
    body = await report(api, "capacity", f"{MARCH}&area={BANES}")

    # Open-place nights. Crisis house: Mar 1 x 4 (Feb 1 declaration) + Mar 2-9 8 x 6 + closed 0 +
    # Mar 10-27 18 x 5 + Mar 28-29 2 x 3 + Mar 30-31 2 x 2 = 4 + 48 + 90 + 6 + 4 = 152.
    # Hillview: Mar 1-19 19 x 16 + closed Mar 20-24 + Mar 25-31 7 x 16 = 304 + 112 = 416.
    # Older adult ward: Mar 1-31 31 x 14 = 434.
    by_unit = {row["name"].split(" (")[0]: row for row in body["by_unit"]}
    assert {name: (r["occupied_nights"], r["open_place_nights"], r["occupancy"]) for name, r in by_unit.items()} == {
        "Bath Crisis House": (11, 152, round(11 / 152, 4)),
        "Hillview Lodge Acute Ward, Bath": (32, 416, round(32 / 416, 4)),
        "Bath Older Adult Ward": (0, 434, 0.0),
    }
    assert body["by_kind"] == [
        {"kind": "acute_adult", "occupied_nights": 32, "open_place_nights": 416, "occupancy": round(32 / 416, 4)},
        {"kind": "acute_older_adult", "occupied_nights": 0, "open_place_nights": 434, "occupancy": 0.0},
        {"kind": "crisis_house", "occupied_nights": 11, "open_place_nights": 152, "occupancy": round(11 / 152, 4)},
    ]
    assert body["occupancy"] == {"occupied_nights": 43, "open_place_nights": 1002, "occupancy": round(43 / 1002, 4)}
    assert body["hold_outcomes"] == {"created": 8, "held": 1, "arrived": 3, "released": 1, "declined": 1, "expired": 2}
    # 45, 60, 120 minutes: median rank ceil(1.5) = 2, p90 rank ceil(2.7) = 3.
    assert body["hold_to_arrival_minutes"] == {"arrived": 3, "median": 60.0, "p90": 120.0}
    assert body["unmet_demand"] == {"total": 4, "search": 2, "hold": 2}
    assert {k: v for k, v in body["unmet_demand_by_kind"].items() if v} == {
        "crisis_house": 1,
        "acute_adult": 2,
        "any": 1,
    }
    assert {k: v for k, v in body["unmet_demand_by_hour"].items() if v} == {"00": 1, "02": 1, "10": 1, "18": 1}
    assert len(body["unmet_demand_by_hour"]) == 24


async def test_each_report_reads_its_figures_in_one_statement_and_capacity_in_two(reports: Api) -> None:
    """Issue 15: a report's figures are read in one statement (the capacity report's in two: nights per
    unit, kind and in all; holds and unmet demand), whichever the period."""
    api = reports
    names = ("placements", "detention_episodes", "holds", "unmet_demand", "availability_declarations")
    for name, reads in (("out-of-area", 1), ("s136", 1), ("equality", 1), ("capacity", 2)):
        for period in (MARCH, "from=2026-02-01&to=2026-02-28"):
            statements = Statements(api)
            await report(api, name, f"{period}&area={BANES}")
            read = [s for s in statements.sent if any(table in s for table in names)]
            assert len(read) == reads, (name, read)


# --- equality and suppression ----------------------------------------------------------------------


def test_suppression_rules() -> None:
    # The MHSDS rule: 0 stays 0, 1 to 7 is "*", any other count is rounded to the nearest 5.
    assert [disclosed(n) for n in (0, 1, 7, 8, 10, 12, 13, 17, 18, 102, 103)] == [
        0, "*", "*", 10, 10, 10, 15, 15, 20, 100, 105
    ]  # fmt: skip
    # Rounding and "*" alone can leave a "*" pinned: a total of 12 (shown 10) split into 8 (shown 10) and
    # four 1s: 8 + 4 x 1 = 12 is the most the total can be, so every "*" is 1. The 8 is hidden too.
    total, cells = Count(12), [Count(8), *(Count(1) for _ in range(4)), Count(0)]
    total.split(cells)
    assert [c.value for c in exposed(total)] == [1, 1, 1, 1]
    protect(total)
    assert (total.shown, [c.shown for c in cells]) == (10, ["*", "*", "*", "*", "*", 0])
    assert exposed(total) == []
    # Nothing to hide: left alone.
    total, cells = Count(20), [Count(12), Count(3), Count(5), Count(0)]
    total.split(cells)
    assert [c.shown for c in protect(total).tree()] == [20, 10, "*", "*", 0]


async def test_equality_suppression(reports: Api) -> None:
    api = reports
    units = ["Bath Crisis House", "Hillview Lodge", "Northfield Park Hospital Acute"]
    # 23 placements started in May 2026: ethnicity 13 A, 8 B, 2 C; sex 12 female, 11 male; ages 10 x 20,
    # 9 x 30, 1 x 40, 3 x 60. The last starts at 00:30 BST on May 1 (2026-04-30T23:30Z): May.
    ethnicities = ["A"] * 13 + ["B"] * 8 + ["C"] * 2
    sexes = ["female"] * 12 + ["male"] * 11
    ages = [20] * 10 + [30] * 9 + [40] + [60] * 3
    rows = []
    for i in range(23):
        started = "2026-04-30T23:30" if i == 22 else f"2026-05-{i + 2:02d}T12:00"
        rows.append(
            await placement(
                api,
                units[i % 3],
                f"E{i}",
                started,
                age=ages[i],
                sex=sexes[i],
                ethnicity=ethnicities[i],
                oap_reason="10" if i % 3 == 2 else None,
            )
        )
    # 00:30 BST on June 1: not May (it would make Z a suppressed 1).
    rows.append(await placement(api, "Bath Crisis House", "E23", "2026-05-31T23:30", ethnicity="Z"))
    # Six detentions in May: five of ethnicity A, one B.
    for i in range(6):
        detained = datetime(2026, 5, 10 + i, 12, tzinfo=UTC)
        rows.append(
            S136Detention(
                place_type="emergency_department",
                detained_at=detained,
                **first_leg(detained),
                created_by="test",
                created_at=detained,
                **person(f"D{i}", age=30, ethnicity="B" if i == 5 else "A"),
            )
        )
    await add(api, *rows)
    api.clock.set(t("2026-06-15T12:00"))
    body = await report(api, "equality", f"from=2026-05-01&to=2026-05-31&area={BANES}")

    # 1 to 7 is "*", any other count (the total too) to the nearest 5: 23 -> 25, 13 -> 15, 8 -> 10, 12 -> 10,
    # 11 -> 10, 9 -> 10; zeros show.
    placements = body["placements"]
    assert placements["total"] == 25
    assert {k: v for k, v in placements["by_ethnicity"].items() if v} == {"A": 15, "B": 10, "C": "*"}
    assert placements["by_ethnicity"]["Z"] == 0 and placements["by_ethnicity"]["not_known"] == 0
    assert placements["by_sex"] == {"female": 10, "male": 10, "other": 0, "unknown": 0}
    assert placements["by_age_band"] == {
        "0-17": 0,
        "18-24": 10,
        "25-34": 10,
        "35-44": "*",
        "45-54": 0,
        "55-64": "*",
        "65+": 0,
    }
    # Six detentions: the total is "*" too, so no cell is the total minus the others.
    detentions = body["detentions"]
    assert detentions["total"] == "*"
    assert {k: v for k, v in detentions["by_ethnicity"].items() if v} == {"A": "*", "B": "*"}
    assert detentions["by_sex"] == {"female": 0, "male": "*", "other": 0, "unknown": 0}
    assert detentions["by_age_band"]["25-34"] == "*"


# --- scope, validation, formats, audit --------------------------------------------------------------


async def test_scope_and_bad_input(reports: Api) -> None:
    api = reports
    for name in REPORTS:
        # A commissioner of Bath and North East Somerset may not ask for Bristol; an admin may.
        assert_problem(await api.get(f"/api/reports/{name}?{MARCH}&area={BRISTOL}", "commissioner"), 403)
        assert (await api.get(f"/api/reports/{name}?{MARCH}&area={BRISTOL}", "admin")).status_code == 200
        for role in ("amhp", "bedmanager", "conveyance"):
            assert_problem(await api.get(f"/api/reports/{name}?{MARCH}", role), 403)
        assert_problem(await api.get(f"/api/reports/{name}?{MARCH}"), 401)
    url = "/api/reports/out-of-area"
    assert_problem(await api.get(f"{url}?from=2026-02-30&to=2026-03-31", "commissioner"), 422, "from")
    assert_problem(await api.get(f"{url}?from=2026-03-01&to=March", "commissioner"), 422, "to")
    assert "'from'" in assert_problem(await api.get(f"{url}?to=2026-03-31", "commissioner"), 422)["detail"]
    assert_problem(await api.get(f"{url}?from=2026-04-01&to=2026-03-31", "commissioner"), 422, "from")
    assert_problem(await api.get(f"{url}?from=0001-01-01&to=9999-12-31", "admin"), 422, "from")
    assert_problem(await api.get(f"{url}?{MARCH}&area=E06000099", "admin"), 422, "area")
    assert_problem(await api.get(f"{url}?{MARCH}&area=bristol", "commissioner"), 422, "area")
    assert_problem(await api.get(f"{url}?{MARCH}&format=pdf", "commissioner"), 422, "format")


def _figures(body: dict) -> dict[tuple[str, str, str], object]:
    """The report's figures as (section, key, metric) -> value, as the CSV lays them out."""
    found: dict[tuple[str, str, str], object] = {}

    def walk(section: str, path: list[str], value) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(section, [*path, name], inner)
        elif isinstance(value, list):
            for record in value:
                key, *rest = record.items()
                for name, inner in rest:
                    walk(section, [*path, str(key[1]), name], inner)
        else:
            found[(section, "/".join(path[:-1]), path[-1])] = value

    for section, value in body.items():
        walk(section, [], value)
    return found


def _same(text: str, value) -> bool:
    if value is None:
        return text == ""
    if isinstance(value, bool | str):
        return text == str(value)
    return float(text) == value


async def test_formats_hold_the_same_figures_and_every_run_is_audited(reports: Api) -> None:
    api = reports
    await oap_history(api)
    await s136_history(api)
    api.clock.set(t("2026-04-15T12:00"))
    runs = 0
    for name in REPORTS:
        query = f"{MARCH}&area={BANES}"
        body = await report(api, name, query)
        figures = _figures(body)
        assert len(figures) > 10

        for url, headers in ((f"{query}&format=csv", {}), (query, {"Accept": "text/csv"})):
            response = await api.get(f"/api/reports/{name}?{url}", "commissioner", headers=headers)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/csv")
            disposition = response.headers["content-disposition"]
            assert disposition == f'attachment; filename="{name}_{BANES}_2026-03-01_2026-03-31.csv"'
            assert REF not in response.text
            rows = list(csv.reader(io.StringIO(response.text)))
            assert rows[0] == ["section", "key", "metric", "value"]
            read = {(s, k, m): v for s, k, m, v in rows[1:]}
            assert read.keys() == figures.keys()
            assert all(_same(read[key], value) for key, value in figures.items()), name

        response = await api.get(f"/api/reports/{name}?{query}&format=xlsx", "commissioner")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
        assert response.headers["content-disposition"].endswith('2026-03-31.xlsx"')
        book = load_workbook(io.BytesIO(response.content))
        assert book.sheetnames == list(body)
        for section, value in body.items():
            sheet_rows = list(book[section].iter_rows(values_only=True))
            cells = [cell for row in sheet_rows for cell in row]
            assert not any(isinstance(c, str) and REF in c for c in cells)
            header, data = sheet_rows[0], sheet_rows[1:]
            if isinstance(value, list):  # a table: one row per record, a column per field
                assert [dict(zip(header, row, strict=True)) for row in data] == value
                continue
            mine = {key: v for key, v in figures.items() if key[0] == section}
            if header == ("metric", "value"):
                read = {(section, "", m): v for m, v in data}
            else:
                assert header == ("key", "metric", "value")
                read = {(section, k or "", m): v for k, m, v in data}
            for key, v in mine.items():
                cell = read[key]
                if isinstance(cell, datetime):  # dates are typed as dates
                    cell = cell.date().isoformat()
                assert cell == v, (key, cell, v)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    assert isinstance(cell, int | float)
        runs += 4  # JSON, two CSVs and the workbook

    async with api.db.read_sessions() as session:
        entries = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action.like("report.%")).order_by(AuditEntry.id))
        ).all()
    assert len(entries) == runs
    assert {e.action for e in entries} == {"report.out_of_area", "report.s136", "report.capacity", "report.equality"}
    first = entries[0]
    assert (first.username, first.role, first.object_type, first.object_id) == (
        "commissioner",
        "commissioner",
        "report",
        "out_of_area",
    )
    assert first.after == {"from": "2026-03-01", "to": "2026-03-31", "areas": [BANES], "format": "json"}
    assert [e.after["format"] for e in entries[:4]] == ["json", "csv", "csv", "xlsx"]


async def test_no_person_reference_in_any_report(reports: Api) -> None:
    api = reports
    await oap_history(api)
    await s136_history(api)
    api.clock.set(t("2026-04-15T12:00"))
    for name in REPORTS:
        for as_, query in (("commissioner", MARCH), ("admin", MARCH), ("admin", "from=2025-01-01&to=2026-12-31")):
            for fmt in ("json", "csv", "xlsx"):
                response = await api.get(f"/api/reports/{name}?{query}&format={fmt}", as_)
                assert response.status_code == 200, response.text
                assert REF.encode() not in response.content
                if fmt == "xlsx":
                    book = load_workbook(io.BytesIO(response.content))
                    for sheet in book:
                        assert not any(REF in str(c) for row in sheet.iter_rows(values_only=True) for c in row)


def test_periods_are_local_dates() -> None:
    from capacity.reports.common import ReportQuery

    summer = ReportQuery(date(2026, 7, 1), date(2026, 7, 31), None, t("2026-08-01T00:00"))
    assert (summer.start, summer.end) == (t("2026-06-30T23:00"), t("2026-07-31T23:00"))
    march = ReportQuery(date(2026, 3, 1), date(2026, 3, 31), None, t("2026-03-31T11:00"))
    assert (march.start, march.end) == (t("2026-03-01T00:00"), t("2026-03-31T23:00"))
    assert march.nights_after == date(2026, 3, 31)  # tonight has not passed yet


# --- the monthly trend (the commissioner's chart) ---------------------------------------------------


def _month_ends(first: str, count: int) -> list[tuple[str, str, str]]:
    """(YYYY-MM, first day, last day) of `count` months from `first` (YYYY-MM)."""
    year, month = map(int, first.split("-"))
    found = []
    for _ in range(count):
        start = date(year, month, 1)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        found.append((start.isoformat()[:7], start.isoformat(), (date(year, month, 1) - timedelta(days=1)).isoformat()))
    return found


async def _report_runs(api: Api) -> list[AuditEntry]:
    async with api.db.read_sessions() as session:
        query = select(AuditEntry).where(AuditEntry.action.like("report.%")).order_by(AuditEntry.id)
        return list((await session.scalars(query)).all())


async def test_the_trend_is_each_months_out_of_area_report_in_one_audited_call(api: Api) -> None:
    """On the demo data and a year of history: each month of the series holds the figures the out-of-area
    report gives for that month (the 12 calls the page made before), for a commissioner and an admin."""
    await oap_history(api)
    api.clock.set(t("2026-04-15T12:00"))  # April is still running: its nights so far
    months = _month_ends("2025-05", 12)
    for as_, area in (
        ("commissioner", ""),
        ("commissioner", f"&area={BANES}"),
        ("admin", ""),
        ("admin", f"&area={BRISTOL}"),
    ):
        before = len(await _report_runs(api))
        trend = await report(api, "trend", f"from=2025-05&to=2026-04{area}", as_)
        runs = await _report_runs(api)
        assert len(runs) == before + 1  # one audit entry for the whole series
        assert runs[-1].action == "report.trend"
        assert runs[-1].after["from"] == "2025-05" and runs[-1].after["to"] == "2026-04"
        assert trend["parameters"]["report"] == "trend"
        assert [m["month"] for m in trend["months"]] == [m for m, _, _ in months]
        for entry, (month, first, last) in zip(trend["months"], months, strict=True):
            assert (entry["from"], entry["to"]) == (first, last), month
            monthly = await report(api, "out-of-area", f"from={first}&to={last}{area}", as_)
            assert entry["totals"] == {k: monthly["totals"][k] for k in entry["totals"]}, month
            assert entry["inappropriate"] == monthly["inappropriate"], month
            assert set(entry["totals"]) >= {"started", "ended", "active_at_end", "bed_days", "cost"}
    # The figures are not all zero: March holds the hand-computed history (test_out_of_area_figures).
    march = next(m for m in trend["months"] if m["month"] == "2026-03")
    assert march["totals"]["bed_days"] > 0 and march["inappropriate"]["bed_days"] > 0


async def test_the_trend_checks_its_range_and_roles(api: Api) -> None:
    url = "/api/reports/trend"
    year = "from=2026-01&to=2026-12"
    assert (await api.get(f"{url}?{year}", "commissioner")).status_code == 200
    assert (await api.get(f"{url}?from=2025-01&to=2026-12", "commissioner")).status_code == 200  # 24 months
    for query, field in (
        ("from=2025-01&to=2027-01", "to"),  # 25 months
        ("from=2026-13&to=2026-12", "from"),
        ("from=2026-00&to=2026-12", "from"),
        ("from=2026-01-01&to=2026-12", "from"),
        ("from=2026-01&to=December", "to"),
        ("from=2026-06&to=2026-05", "from"),  # from after to
        ("from=0001-01&to=0001-12", "from"),
        (f"{year}&area=E06000099", "area"),
    ):
        body = assert_problem(await api.get(f"{url}?{query}", "commissioner"), 422, field)
        assert body["field"] == field and body["errors"][0]["field"] == field, query
    assert "'from'" in assert_problem(await api.get(f"{url}?to=2026-12", "commissioner"), 422)["detail"]
    # The other reports' roles: a commissioner for their own areas, an admin for any; nobody else.
    assert_problem(await api.get(f"{url}?{year}&area={BRISTOL}", "commissioner"), 403)
    assert (await api.get(f"{url}?{year}&area={BRISTOL}", "admin")).status_code == 200
    for role in ("amhp", "bedmanager", "conveyance"):
        assert_problem(await api.get(f"{url}?{year}", role), 403)
    assert_problem(await api.get(f"{url}?{year}"), 401)
    # Refused calls are not audited as runs; the three that ran are.
    assert [e.action for e in await _report_runs(api)] == ["report.trend"] * 3
