"""Whether a person may be held or placed at a unit; each refusal names the field it is about."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import BindParameter, ColumnElement, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.booking.persons import looks_like_nhs_number
from capacity.booking.units.models import Area, Unit, UnitAreaRule
from capacity.codes import ACUTE_KINDS, DETAINED_BASES
from capacity.errors import Forbidden, Invalid

if TYPE_CHECKING:
    from capacity.auth.security import Actor


def check_person_known(ref: str, home_area: str, home_known: bool) -> None:
    """The reference must not be an NHS number, and the home area must exist."""
    if looks_like_nhs_number(ref):
        raise Invalid("person.ref looks like an NHS number; use a local pseudonymous reference", field="person.ref")
    if not home_known:
        raise Invalid(f"no active area with code {home_area}", field="person.home_area")


async def check_person(session: AsyncSession, ref: str, home_area: str) -> Area:
    """check_person_known, reading the home area (which the caller gets back)."""
    area = await session.get(Area, home_area)
    check_person_known(ref, home_area, area is not None and area.active)
    assert area is not None  # check_person_known refused a missing one
    return area


def ensure_amhp_area(actor: Actor, home_area: str) -> None:
    """An AMHP acts for people from their own areas only."""
    if actor.role == "amhp" and home_area not in actor.areas:
        raise Forbidden("the person's home area is not one of your areas")


def check_age_exception(unit: Unit, age: int, reason: str | None) -> bool:
    """Whether an admission is the lawful emergency admission of a 16- or 17-year-old to an adult
    inpatient ward (MHA 1983 s131A asks for an environment suitable for their age; when none can be
    had in an emergency it happens, and must be recorded, with why)."""
    if reason is None:
        return False
    if not (16 <= age < 18 <= unit.min_age and unit.kind in ACUTE_KINDS):
        raise Invalid(
            "an age exception is only for a 16- or 17-year-old admitted to an adult inpatient ward",
            field="age_exception_reason",
        )
    return True


def takes_age(unit: Any, age: int) -> bool:
    return unit.min_age <= age and (unit.max_age is None or age <= unit.max_age)


def takes_sex(unit: Any, sex: str) -> bool:
    return unit.sex == "any" or sex == unit.sex


def refuses_area(refused: Collection[str], accepted: Collection[str], home_area: str) -> bool:
    """A unit refuses the areas it names, and, when it lists the areas it accepts, every other one."""
    return home_area in refused or bool(accepted and home_area not in accepted)


def check_unit_takes_known(unit: Unit, age: int, sex: str, area_refused: bool, *, age_exception: bool = False) -> None:
    """Refuse a closed unit, and a person outside its age range, sex or accepted areas (422)."""
    if not unit.active:
        raise Invalid("the unit has been retired", field="unit_id", reason="unit_retired")
    if unit.status != "open":
        raise Invalid(f"the unit is closed ({unit.closed_reason})", field="unit_id", reason="unit_closed")
    if age_exception:
        age = unit.min_age  # check_age_exception has allowed this person below the unit's ages
    if not takes_age(unit, age):
        upper = f"-{unit.max_age}" if unit.max_age is not None else "+"
        raise Invalid(
            f"the unit takes ages {unit.min_age}{upper}; the person is {age}", field="person.age", reason="age"
        )
    if not takes_sex(unit, sex):
        raise Invalid(f"the unit takes {unit.sex} people only", field="person.sex", reason="sex")
    if area_refused:
        raise Invalid(
            "the unit does not take people from this home area", field="person.home_area", reason="area_refused"
        )


def check_takes_detained(unit: Unit, basis: str, field: str) -> None:
    """A person detained under the Act (or held for s136) only where the unit takes detained people."""
    if basis in DETAINED_BASES and not unit.accepts_detained:
        raise Invalid(
            f"the unit does not take people detained under the Mental Health Act ({basis})",
            field=field,
            reason="not_detained",
        )


async def check_unit_takes(
    session: AsyncSession, unit: Unit, age: int, sex: str, home_area: str, *, age_exception: bool = False
) -> None:
    """check_unit_takes_known, reading the unit's area rules."""
    rules = (
        await session.execute(select(UnitAreaRule.rule, UnitAreaRule.area_code).where(UnitAreaRule.unit_id == unit.id))
    ).all()
    refused = {code for rule, code in rules if rule == "refuses"}
    accepted = {code for rule, code in rules if rule == "accepts"}
    check_unit_takes_known(unit, age, sex, refuses_area(refused, accepted, home_area), age_exception=age_exception)


def _hold_checks() -> list[ColumnElement[bool]]:
    rule = UnitAreaRule
    unit_id: BindParameter[str] = bindparam("unit_id")
    home: BindParameter[str] = bindparam("home_area")
    return [
        exists().where(Area.code == home, Area.active).label("home_known"),
        exists().where(rule.unit_id == unit_id, rule.rule == "refuses", rule.area_code == home).label("refused"),
        exists().where(rule.unit_id == unit_id, rule.rule == "accepts").label("accepts_listed"),
        exists().where(rule.unit_id == unit_id, rule.rule == "accepts", rule.area_code == home).label("accepted"),
    ]


# What a hold reads to check its person and unit (values `:unit_id`, `:home_area`), as columns a hold adds
# to its unit's figures (availability.one_unit_figures): checks and figures in one round trip.
HOLD_CHECKS = _hold_checks()


def check_hold_eligibility(unit: Unit, ref: str, age: int, sex: str, home_area: str, checked: Any) -> None:
    """check_person_known and check_unit_takes_known for a hold, from the values of HOLD_CHECKS."""
    check_person_known(ref, home_area, bool(checked.home_known))
    refused = bool(checked.refused) or (bool(checked.accepts_listed) and not checked.accepted)
    check_unit_takes_known(unit, age, sex, refused)
