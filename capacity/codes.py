"""Every code the system speaks (DOMAIN.md, API.md), written once.

Each code set is a `StrEnum` whose members carry a human `label`. Everything else derives from here:
the msgspec request and response types (msgspec validates a StrEnum by value; Litestar's OpenAPI lists
its values), the database CHECK constraints (`check_in`), the report breakdowns, the importer's checks
and `GET /api/codes`, which the browser pages read instead of keeping copies.

The values are the stable API contract: never change one. A member's label is for people and may change.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from sqlalchemy import CheckConstraint


class Code(StrEnum):
    """A code with a label: `NAME = "value", "label"` (the label defaults to the value, `_` as spaces)."""

    label: str

    def __new__(cls, value: str, label: str | None = None) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label if label is not None else value.replace("_", " ")
        return member


def values(code: type[Code]) -> tuple[str, ...]:
    """The code set's values as plain strings, in their declared order."""
    return tuple(member.value for member in code)


def check_in(column: str, code: type[Code], name: str | None = None) -> CheckConstraint:
    """`CHECK (column in ('a', 'b', ...))`, named after the column unless told (the naming convention
    makes it `ck_<table>_<name>`). Values are code literals without quotes, so they are written as is."""
    listed = ", ".join(f"'{value}'" for value in values(code))
    return CheckConstraint(f"{column} in ({listed})", name=name or column)


# --- Who uses the system ---------------------------------------------------------------------------


class Role(Code):
    """The role of a user (staff, never a person in crisis)."""

    BED_MANAGER = "bed_manager", "bed manager"
    AMHP = "amhp", "AMHP"
    CONVEYANCE = "conveyance"
    COMMISSIONER = "commissioner"
    ADMIN = "admin"


# --- Providers and units ---------------------------------------------------------------------------


class Sector(Code):
    """Who runs a provider."""

    NHS = "nhs", "NHS"
    PRIVATE = "private"
    VOLUNTARY = "voluntary"


class UnitKind(Code):
    """What a unit is (DOMAIN.md "What can be booked")."""

    S136_SUITE = "s136_suite", "136 suite"
    CRISIS_HOUSE = "crisis_house", "crisis house"
    COMMUNITY_BED = "community_bed", "community bed"
    RESPITE = "respite"
    ACUTE_ADULT = "acute_adult", "acute adult"
    ACUTE_OLDER_ADULT = "acute_older_adult", "acute older adult"
    PICU = "picu", "PICU"


class UnitSex(Code):
    """Whom a unit takes by sex."""

    ANY = "any"
    FEMALE = "female", "women only"
    MALE = "male", "men only"


class UnitStatus(Code):
    """Whether a unit takes anyone now."""

    OPEN = "open"
    CLOSED = "closed"


class ClosedReason(Code):
    """Why a unit is closed."""

    STAFFING = "staffing"
    MAINTENANCE = "maintenance"
    INFECTION_CONTROL = "infection_control", "infection control"
    OTHER = "other"


class AreaRule(Code):
    """How a unit treats a home area: takes only the areas it `accepts`, or none it `refuses`."""

    ACCEPTS = "accepts"
    REFUSES = "refuses"


# --- Crisis alternatives: help that is not a bookable bed -------------------------------------------


class AlternativeKind(Code):
    """What a crisis alternative is (issue 16): somewhere to go, someone to call, or a team that comes."""

    SAFE_HAVEN = "safe_haven", "safe haven or crisis café"
    CRISIS_LINE = "crisis_line", "crisis line"
    STREET_TRIAGE = "street_triage", "street triage"
    HOST_FAMILY = "host_family", "host family"
    LIAISON_TEAM = "liaison_team", "liaison team"
    CAMHS_CRISIS_TEAM = "camhs_crisis_team", "CAMHS crisis team"


# --- Holds, placements and conveyance --------------------------------------------------------------


class HoldPurpose(Code):
    """What a place is held for."""

    S136 = "s136", "section 136"
    CRISIS = "crisis"
    RESPITE = "respite"
    ADMISSION = "admission"


class HoldStatus(Code):
    """A hold's state: only `held` changes."""

    HELD = "held"
    ARRIVED = "arrived"
    RELEASED = "released"
    DECLINED = "declined"
    EXPIRED = "expired"


class DeclineReason(Code):
    """Why a bed manager declined a hold."""

    UNIT_CLOSED = "unit_closed", "unit closed"
    CLINICALLY_UNSUITABLE = "clinically_unsuitable", "clinically unsuitable"
    STAFFING = "staffing"
    OTHER = "other"


class LegalBasis(Code):
    """The legal status of a placement (Mental Health Act 1983 sections, or informal)."""

    INFORMAL = "informal"
    S135 = "s135", "section 135"
    S136 = "s136", "section 136"
    S2 = "s2", "section 2"
    S3 = "s3", "section 3"
    S4 = "s4", "section 4"
    OTHER = "other"


class Outcome(Code):
    """How a placement or a s136 detention ended."""

    ADMITTED_INFORMAL = "admitted_informal", "admitted informally"
    DETAINED_S2 = "detained_s2", "detained under section 2"
    DETAINED_S3 = "detained_s3", "detained under section 3"
    DISCHARGED = "discharged"
    REFERRED_COMMUNITY = "referred_community", "referred to community services"
    OTHER = "other"
    # Moved to another place of safety: that leg ends, the s135/s136 episode and its clock go on.
    TRANSFERRED = "transferred", "transferred to another place of safety"


class OapReason(Code):
    """NHS Data Dictionary, "referred out of area reason"; 10 makes a placement inappropriate."""

    UNAVAILABLE_BED = "10", "unavailable bed at referring organisation"
    SAFEGUARDING = "11", "safeguarding"
    OFFENDING_RESTRICTIONS = "12", "offending restrictions"
    STAFF_OR_FAMILY = "13", "staff member or family/friend within the referring organisation"
    PATIENT_CHOICE = "14", "patient choice"
    NOT_KNOWN = "99", "not known"


class ConveyanceMode(Code):
    """How a person is taken to a place (police vehicles need a reason)."""

    AMBULANCE = "ambulance"
    POLICE_VEHICLE = "police_vehicle", "police vehicle"
    SECURE_TRANSPORT = "secure_transport", "secure transport"
    OTHER = "other"


class PoliceVehicleReason(Code):
    """Why a police vehicle was used (they should not be): a code, so no free text reaches a report."""

    NO_AMBULANCE_AVAILABLE = "no_ambulance_available", "no ambulance available"
    AMBULANCE_DELAYED = "ambulance_delayed", "ambulance delayed"
    RISK_OF_VIOLENCE = "risk_of_violence", "risk of violence"
    OTHER = "other"


class UnmetDemandSource(Code):
    """What found no place: a search, or a hold refused for lack of one."""

    SEARCH = "search"
    HOLD = "hold"


# --- Section 136 detentions away from a bookable unit ----------------------------------------------


class PlaceType(Code):
    """A place of safety that is not a bookable unit."""

    EMERGENCY_DEPARTMENT = "emergency_department", "emergency department"
    POLICE_STATION = "police_station", "police station"
    OTHER = "other", "other place"


class DetentionBasis(Code):
    """The powers whose detention is one episode with one 24-hour clock (s136(2A), s135(3ZA))."""

    S136 = "s136", "section 136"
    S135 = "s135", "section 135"


class ExtensionReason(Code):
    """The only lawful ground for the one s136B extension (also s135(3ZA)): never a bed or staff."""

    CONDITION_OF_PERSON = "condition_of_person", "the person's condition makes the assessment impracticable"


class PoliceStationCriterion(Code):
    """The Places of Safety Regulations 2017 (SI 2017/1036) reg. 2: all must hold for an adult in a police
    station."""

    IMMINENT_RISK = "imminent_risk_of_serious_injury_or_death", "imminent risk of serious injury or death"
    NO_OTHER_PLACE = "no_other_place_reasonably_available", "no other place reasonably available"
    HEALTH_PROFESSIONAL_PRESENT = "health_professional_present", "a health professional is present"


# --- Person data -----------------------------------------------------------------------------------


class PersonSex(Code):
    """A person's sex, as recorded."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Ethnicity(Code):
    """NHS ethnic category (NHS Data Dictionary "ethnic category"): A-H, J-N, P, R, S, Z (not stated)."""

    A = "A", "White - British"
    B = "B", "White - Irish"
    C = "C", "White - Any other White background"
    D = "D", "Mixed - White and Black Caribbean"
    E = "E", "Mixed - White and Black African"
    F = "F", "Mixed - White and Asian"
    G = "G", "Mixed - Any other mixed background"
    H = "H", "Asian or Asian British - Indian"
    J = "J", "Asian or Asian British - Pakistani"
    K = "K", "Asian or Asian British - Bangladeshi"
    L = "L", "Asian or Asian British - Any other Asian background"
    M = "M", "Black or Black British - Caribbean"
    N = "N", "Black or Black British - African"
    P = "P", "Black or Black British - Any other Black background"
    R = "R", "Other Ethnic Groups - Chinese"
    S = "S", "Other Ethnic Groups - Any other ethnic group"
    Z = "Z", "Not stated"


class RiskFlag(Code):
    """Need-to-know risks that may travel with a hold to the receiving unit."""

    VIOLENCE = "violence"
    SELF_HARM = "self_harm", "self-harm"
    SUBSTANCE_USE = "substance_use", "substance use"


class Advisory(Code):
    """What an answer warns of while it goes ahead: the figures it relied on may be wrong."""

    STALE = "stale", "the unit's figures are stale: phone to confirm the place"
    OVER_OCCUPIED = "over_occupied", "fewer places are declared open than people are placed"


# --- Derived sets ----------------------------------------------------------------------------------

KINDS: tuple[str, ...] = values(UnitKind)
# Inpatient kinds (MHSDS hospital bed types 200, 201, 202): an out-of-area placement needs a reason.
ACUTE_KINDS: frozenset[str] = frozenset(
    kind.value for kind in (UnitKind.ACUTE_ADULT, UnitKind.ACUTE_OLDER_ADULT, UnitKind.PICU)
)
# Legal bases under which a person is detained (Mental Health Act 1983); a hold for s136 is for one too.
DETAINED_BASES: frozenset[str] = frozenset(
    basis.value for basis in (LegalBasis.S135, LegalBasis.S136, LegalBasis.S2, LegalBasis.S3, LegalBasis.S4)
)
# Kinds of unit that are places where a person may be detained: 136 suites and hospital wards. Crisis
# houses, community and respite beds are voluntary.
DETAINING_KINDS: frozenset[str] = frozenset({UnitKind.S136_SUITE.value, *ACUTE_KINDS})
ROLES: tuple[str, ...] = values(Role)
# What a user of each role works for: a bed manager one provider; AMHPs and conveyance their areas (at
# least one); a commissioner the areas reported on; an admin everything. The admin API and page use it.
ROLE_SCOPE: dict[str, str] = {
    Role.BED_MANAGER: "provider",
    Role.AMHP: "areas",
    Role.CONVEYANCE: "areas",
    Role.COMMISSIONER: "areas",
    Role.ADMIN: "all",
}
# Roles that must name at least one area (a commissioner with none reports on none).
ROLES_NEEDING_AREAS: frozenset[str] = frozenset({Role.AMHP.value, Role.CONVEYANCE.value})
# The purpose a hold at a unit of each kind is for, unless the AMHP says otherwise.
KIND_PURPOSE: dict[str, HoldPurpose] = {
    UnitKind.S136_SUITE: HoldPurpose.S136,
    UnitKind.CRISIS_HOUSE: HoldPurpose.CRISIS,
    UnitKind.COMMUNITY_BED: HoldPurpose.CRISIS,
    UnitKind.RESPITE: HoldPurpose.RESPITE,
    UnitKind.ACUTE_ADULT: HoldPurpose.ADMISSION,
    UnitKind.ACUTE_OLDER_ADULT: HoldPurpose.ADMISSION,
    UnitKind.PICU: HoldPurpose.ADMISSION,
}
# Out of area for want of a bed at home: the inappropriate OAPs of the national ambition.
INAPPROPRIATE_OAP_REASON = OapReason.UNAVAILABLE_BED

# NHS England's Operational Pressures Escalation Levels (OPEL framework), 1 steady state to 4 extreme
# pressure: a provider's declared level is a number of these. At 3 and 4 a regional sitrep lists it.
ESCALATION_LEVELS: tuple[int, ...] = (1, 2, 3, 4)
ESCALATED_LEVELS: frozenset[int] = frozenset({3, 4})

# What `GET /api/codes` serves, by the key it serves each under.
CODE_SETS: dict[str, type[Code]] = {
    "kinds": UnitKind,
    "roles": Role,
    "sectors": Sector,
    "unit_sexes": UnitSex,
    "unit_statuses": UnitStatus,
    "closed_reasons": ClosedReason,
    "area_rules": AreaRule,
    "purposes": HoldPurpose,
    "hold_statuses": HoldStatus,
    "decline_reasons": DeclineReason,
    "legal_bases": LegalBasis,
    "outcomes": Outcome,
    "oap_reasons": OapReason,
    "conveyance_modes": ConveyanceMode,
    "police_vehicle_reasons": PoliceVehicleReason,
    "unmet_demand_sources": UnmetDemandSource,
    "place_types": PlaceType,
    "detention_bases": DetentionBasis,
    "extension_reasons": ExtensionReason,
    "police_station_criteria": PoliceStationCriterion,
    "person_sexes": PersonSex,
    "advisories": Advisory,
    "ethnicities": Ethnicity,
    "risk_flags": RiskFlag,
    "alternative_kinds": AlternativeKind,
}
