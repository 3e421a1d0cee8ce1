"""The demo data set: fictional providers and invented capacities around real ONS areas (DOMAIN.md).

Loaded only into an empty database. Every name is marked "(demo)"; none of it is real.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.alternatives import hours
from capacity.alternatives.models import Alternative, AlternativeArea
from capacity.auth.models import User, UserArea
from capacity.auth.passwords import hash_password
from capacity.booking.escalation.service import declared
from capacity.booking.persons import PersonIn, person_columns
from capacity.booking.placements.models import Placement
from capacity.booking.placements.service import site_columns
from capacity.booking.units.models import (
    Area,
    AvailabilityDeclaration,
    Provider,
    Unit,
    UnitAreaRule,
    UnitLocalArea,
)
from capacity.codes import DETAINING_KINDS
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork

BANNER = """
==============================================================================
  DEMO MODE: fictional data, well-known passwords (demo), a signing key kept in the database.
  NOT FOR REAL DATA. Never enter details of a real person here.
==============================================================================
"""

SOUTH_WEST = "South West"
WEST_MIDLANDS = "West Midlands"
BANES, BRISTOL, WILTSHIRE, SOMERSET = "E06000022", "E06000023", "E06000054", "E06000066"
SANDWELL, BIRMINGHAM = "E08000028", "E08000025"

AREAS = [
    (BANES, "Bath and North East Somerset", SOUTH_WEST, 51.3811, -2.3590),
    (BRISTOL, "Bristol", SOUTH_WEST, 51.4545, -2.5879),
    (WILTSHIRE, "Wiltshire", SOUTH_WEST, 51.3492, -1.9927),
    (SOMERSET, "Somerset", SOUTH_WEST, 51.1051, -2.9262),
    (SANDWELL, "Sandwell", WEST_MIDLANDS, 52.5362, -2.0108),
    (BIRMINGHAM, "Birmingham", WEST_MIDLANDS, 52.4862, -1.8904),
]

# key: (name, sector)
PROVIDERS = {
    "awp": ("Avon and Wessex Mental Health Partnership NHS Trust (demo)", "nhs"),
    "som": ("Somerset Levels NHS Foundation Trust (demo)", "nhs"),
    "sanctuary": ("Severn Sanctuary Crisis Houses (demo)", "voluntary"),
    "wilts": ("Wiltshire Downs Respite Care (demo)", "voluntary"),
    "bc": ("Black Country Minds NHS Foundation Trust (demo)", "nhs"),
    "bsol": ("Brum and Solihull Mental Health NHS Trust (demo)", "nhs"),
    "private": ("Northfield Park Private Hospital (demo)", "private"),
}

# Each provider's escalation level (OPEL 1-4), declared this many hours before the demo starts, with a
# note: AWP at 3 and Black Country at 4 (so each region has a provider under pressure), and Somerset's
# 2 declared long enough ago to be stale.
ESCALATIONS = {
    "awp": (3, 1, "demo: acute wards full, PICU near capacity"),
    "som": (2, 20, "demo: not reviewed since yesterday"),
    "sanctuary": (1, 2, None),
    "wilts": (1, 3, None),
    "bc": (4, 1, "demo: ED holding two people awaiting beds"),
    "bsol": (2, 2, None),
    "private": (1, 4, None),
}

# provider, then the UNIT_COLUMNS, then other Unit columns, plus `refuses` (areas the unit refuses) and
# `local_to`: the home areas whose usual local network the unit forms part of. Out
# of area is per unit, not per provider: AWP serves Bristol, Bath and Wiltshire, but only its shared 136
# suite and its Bath wards are local to Wiltshire; its Bristol ward and PICU are local to Bristol and
# Bath, so a Wiltshire resident at the Bristol PICU (about 40 km from home) is an out-of-area placement.
UNIT_COLUMNS = ("name", "kind", "area_code", "lat", "lon", "postcode", "open_places")
UNITS: list[tuple[str, str, str, str, float, float, str, int, dict[str, Any]]] = [
    (
        "awp",
        "Bristol Place of Safety (136 suite, demo)",
        "s136_suite",
        BRISTOL,
        51.4726,
        -2.5544,
        "BS16 1EG",
        4,
        dict(min_age=16, accepts_intoxicated=True, daily_cost=450, local_to=[BANES, BRISTOL, WILTSHIRE]),
    ),
    (
        "som",
        "Taunton 136 Suite (demo)",
        "s136_suite",
        SOMERSET,
        51.0177,
        -3.0911,
        "TA1 5DA",
        2,
        dict(min_age=18, daily_cost=450, refuses=[BRISTOL], local_to=[SOMERSET]),
    ),
    (
        "bc",
        "Sandwell 136 Suite (demo)",
        "s136_suite",
        SANDWELL,
        52.5085,
        -1.9870,
        "B71 4HJ",
        2,
        dict(min_age=18, daily_cost=450, local_to=[SANDWELL]),
    ),
    (
        "sanctuary",
        "Bath Crisis House (demo)",
        "crisis_house",
        BANES,
        51.3890,
        -2.3700,
        "BA2 3AB",
        6,
        dict(min_age=18, max_stay_days=14, daily_cost=180, local_to=[BANES, BRISTOL]),
    ),
    (
        "sanctuary",
        "Bristol Women's Crisis Beds (demo)",
        "community_bed",
        BRISTOL,
        51.4610,
        -2.5960,
        "BS2 8QT",
        4,
        dict(sex="female", min_age=18, max_stay_days=14, daily_cost=190, local_to=[BRISTOL, BANES]),
    ),
    (
        "sanctuary",
        "Frome Community Crisis Beds (demo)",
        "community_bed",
        SOMERSET,
        51.2280,
        -2.3210,
        "BA11 1EY",
        3,
        dict(min_age=18, max_stay_days=10, daily_cost=185, local_to=[SOMERSET]),
    ),
    (
        "wilts",
        "Devizes Respite House (demo)",
        "respite",
        WILTSHIRE,
        51.3510,
        -1.9940,
        "SN10 1AA",
        3,
        dict(min_age=18, max_stay_days=7, daily_cost=160, local_to=[WILTSHIRE, BANES]),
    ),
    (
        "awp",
        "Callington Road Acute Ward (demo)",
        "acute_adult",
        BRISTOL,
        51.4290,
        -2.5570,
        "BS4 5BJ",
        20,
        dict(min_age=18, accepts_intoxicated=False, daily_cost=420, local_to=[BRISTOL, BANES]),
    ),
    (
        "awp",
        "Hillview Lodge Acute Ward, Bath (demo)",
        "acute_adult",
        BANES,
        51.3720,
        -2.3930,
        "BA2 5RP",
        16,
        dict(min_age=18, daily_cost=420, local_to=[BANES, WILTSHIRE]),
    ),
    (
        "awp",
        "Bristol PICU (demo)",
        "picu",
        BRISTOL,
        51.4300,
        -2.5600,
        "BS4 5BJ",
        8,
        dict(min_age=18, daily_cost=780, local_to=[BRISTOL, BANES]),
    ),
    (
        "awp",
        "Bath Older Adult Ward (demo)",
        "acute_older_adult",
        BANES,
        51.3730,
        -2.3940,
        "BA2 5RP",
        14,
        dict(min_age=65, daily_cost=430, local_to=[BANES, WILTSHIRE]),
    ),
    (
        "bc",
        "Hallam Street Acute Ward (demo)",
        "acute_adult",
        SANDWELL,
        52.5090,
        -1.9880,
        "B71 4NY",
        18,
        dict(min_age=18, daily_cost=410, local_to=[SANDWELL]),
    ),
    (
        "bsol",
        "Birmingham Crisis House (demo)",
        "crisis_house",
        BIRMINGHAM,
        52.4700,
        -1.9000,
        "B12 9DA",
        5,
        dict(min_age=18, max_stay_days=14, daily_cost=175, local_to=[BIRMINGHAM]),
    ),
    (
        "bsol",
        "Birmingham Respite Flat (demo)",
        "respite",
        BIRMINGHAM,
        52.4550,
        -1.9300,
        "B29 6JD",
        2,
        dict(min_age=18, max_stay_days=5, daily_cost=150, local_to=[BIRMINGHAM]),
    ),
    (
        "private",
        "Northfield Park Hospital Acute (demo)",
        "acute_adult",
        BIRMINGHAM,
        52.4150,
        -1.9700,
        "B31 2AA",
        12,
        dict(min_age=18, daily_cost=750, local_to=[]),
    ),
    (
        "private",
        "Northfield Park Hospital PICU (demo)",
        "picu",
        BIRMINGHAM,
        52.4150,
        -1.9700,
        "B31 2AA",
        6,
        dict(min_age=18, daily_cost=1050, local_to=[]),
    ),
]

# username, role, provider key, areas
USERS = [
    ("admin", "admin", None, []),
    ("amhp", "amhp", None, [BANES, BRISTOL]),
    ("bedmanager", "bed_manager", "awp", []),
    ("commissioner", "commissioner", None, [BANES]),
    ("conveyance", "conveyance", None, [BANES, BRISTOL, WILTSHIRE, SOMERSET]),
]

# Crisis alternatives, not bookable beds: name, kind, areas served, min age, max age, hours (the reference CSV's
# words, capacity.alternatives.hours.parse), how to refer, phone (Ofcom's numbers for drama), lat, lon.
ALTERNATIVES: list[tuple[str, str, list[str], int, int | None, str, str, str | None, float | None, float | None]] = [
    (
        "Bath Sanctuary safe haven (demo)",
        "safe_haven",
        [BANES],
        18,
        None,
        "daily 18:00-23:00",
        "Walk in, or an AMHP or the crisis team phones ahead.",
        "0117 496 0101",
        51.3826,
        -2.3617,
    ),
    (
        "Bristol crisis café (demo)",
        "safe_haven",
        [BRISTOL, BANES],
        16,
        None,
        "mon-thu 18:00-23:00; fri,sat 18:00-02:00",
        "Walk in; no referral needed.",
        "0117 496 0102",
        51.4560,
        -2.5920,
    ),
    (
        "Severnside crisis line (demo)",
        "crisis_line",
        [BANES, BRISTOL, WILTSHIRE, SOMERSET],
        0,
        None,
        "daily 00:00-24:00",
        "The person, or anyone worried about them, phones; free from any phone.",
        "0808 157 0103",
        None,
        None,
    ),
    (
        "Avon and Wiltshire CAMHS crisis team (demo)",
        "camhs_crisis_team",
        [BANES, BRISTOL, WILTSHIRE, SOMERSET],
        0,
        17,
        "mon-fri 08:00-20:00; sat,sun 10:00-18:00",
        "An AMHP, GP, school or A&E phones the team; it assesses at home or in A&E the same day.",
        "0117 496 0104",
        51.4627,
        -2.5561,
    ),
    (
        "Wiltshire hospital liaison team (demo)",
        "liaison_team",
        [WILTSHIRE],
        16,
        None,
        "mon-fri 09:00-17:00; bank_holidays closed",
        "A&E staff at Salisbury District Hospital bleep the team.",
        "0117 496 0105",
        51.0466,
        -1.7933,
    ),
    (
        "Somerset street triage (demo)",
        "street_triage",
        [SOMERSET],
        18,
        None,
        "thu-sat 19:00-03:00",
        "Police officers call the triage car before using section 136.",
        "0117 496 0106",
        51.0150,
        -3.1030,
    ),
    (
        "Sandwell safe haven (demo)",
        "safe_haven",
        [SANDWELL],
        16,
        None,
        "daily 17:00-24:00",
        "Walk in, or the crisis team refers.",
        "0121 496 0201",
        52.5180,
        -1.9960,
    ),
    (
        "Black Country host families (demo)",
        "host_family",
        [SANDWELL, BIRMINGHAM],
        18,
        None,
        "daily 00:00-24:00",
        "The crisis team refers; a host family takes a guest for up to a week.",
        "0121 496 0202",
        52.5000,
        -1.9500,
    ),
    (
        "Birmingham 0-25 crisis team (demo)",
        "camhs_crisis_team",
        [BIRMINGHAM],
        0,
        25,
        "daily 00:00-24:00",
        "Anyone phones the team; it sees children and young people up to 25 at home or in A&E.",
        "0121 496 0203",
        52.4800,
        -1.9020,
    ),
]

# Some people already placed, so occupancy shows: (unit index, the person (ref, age, sex, home area,
# ethnicity), days ago)
PLACEMENTS = [
    (7, PersonIn("DEMO-0001", 34, "male", BRISTOL, "A"), 6),
    (7, PersonIn("DEMO-0002", 41, "female", BRISTOL, "M"), 3),
    (8, PersonIn("DEMO-0003", 29, "male", BANES, "N"), 9),
    (14, PersonIn("DEMO-0004", 38, "male", BANES, "A"), 12),
    (3, PersonIn("DEMO-0005", 25, "female", BANES, "J"), 2),
    # A Wiltshire resident at AWP's Bristol PICU: AWP serves Wiltshire, but this unit is not local to it.
    (9, PersonIn("DEMO-0006", 31, "male", WILTSHIRE, "A"), 4),
]


@functools.cache
def _demo_password_hash() -> str:
    return hash_password("demo")


async def is_empty(session: AsyncSession) -> bool:
    counts = [await session.scalar(select(func.count()).select_from(t)) for t in (User, Unit, Area)]
    return not any(counts)


async def load_demo(db: Database, now: datetime) -> bool:
    """Load the demo set into an empty database; return False, changing nothing, if it has data."""

    async def work(uow: UnitOfWork) -> bool:
        session = uow.session
        if not await is_empty(session):
            return False
        areas = {
            code: Area(code=code, name=name, region=region, lat=lat, lon=lon) for code, name, region, lat, lon in AREAS
        }
        session.add_all(areas.values())
        providers = {key: Provider(name=name, sector=sector) for key, (name, sector) in PROVIDERS.items()}
        session.add_all(providers.values())
        await session.flush()
        session.add_all(
            declared(providers[key], level, note, now - timedelta(hours=hours_ago), "demo")
            for key, (level, hours_ago, note) in ESCALATIONS.items()
        )

        units = []
        for provider, *values, extra in UNITS:
            columns: dict[str, Any] = dict(zip(UNIT_COLUMNS, values, strict=True))
            columns = {"accepts_detained": columns["kind"] in DETAINING_KINDS, **columns, **extra}
            refuses = columns.pop("refuses", [])
            local_to = columns.pop("local_to")
            unit = Unit(
                provider_id=providers[provider].id,
                status="open",
                last_confirmed_at=now,
                last_confirmed_by="demo",
                **columns,
            )
            unit.area_rules = [UnitAreaRule(area_code=a, rule="refuses") for a in refuses]
            unit.local_areas = [UnitLocalArea(area_code=a) for a in local_to]
            units.append(unit)
        session.add_all(units)
        await session.flush()
        # A month of history: the figures as first declared, then confirmed now, so reports have occupancy.
        for u in units:
            session.add_all(
                [
                    AvailabilityDeclaration(
                        unit_id=u.id,
                        declared_at=now - timedelta(days=30),
                        declared_by="demo",
                        after_open_places=u.open_places,
                        after_status="open",
                        note="demo data",
                    ),
                    AvailabilityDeclaration(
                        unit_id=u.id,
                        declared_at=now,
                        declared_by="demo",
                        before_open_places=u.open_places,
                        after_open_places=u.open_places,
                        before_status="open",
                        after_status="open",
                        confirmation=True,
                        note="demo data",
                    ),
                ]
            )

        for username, role, user_provider, user_areas in USERS:
            session.add(
                User(
                    username=username,
                    password_hash=_demo_password_hash(),
                    role=role,
                    provider_id=providers[user_provider].id if user_provider else None,
                    created_at=now,
                    area_links=[UserArea(area_code=a) for a in user_areas],
                )
            )

        for name, kind, served, min_age, max_age, opening, refer, phone, where_lat, where_lon in ALTERNATIVES:
            session.add(
                Alternative(
                    name=name,
                    kind=kind,
                    min_age=min_age,
                    max_age=max_age,
                    opening_hours=hours.parse(opening),
                    how_to_refer=refer,
                    phone=phone,
                    lat=where_lat,
                    lon=where_lon,
                    active=True,
                    area_links=[AlternativeArea(area_code=a) for a in served],
                )
            )

        for index, person, days_ago in PLACEMENTS:
            unit = units[index]
            site = site_columns(areas[person.home_area], unit)
            session.add(
                Placement(
                    unit_id=unit.id,
                    **person_columns(person),
                    legal_basis="s2",
                    started_at=now - timedelta(days=days_ago),
                    oap_reason="10" if site["out_of_area"] else None,
                    **site,
                    created_by="demo",
                )
            )
        return True

    return await db.write(work)
