"""The codes the system speaks (DOMAIN.md)."""

from typing import Literal

KINDS = (
    "s136_suite",
    "crisis_house",
    "community_bed",
    "respite",
    "acute_adult",
    "acute_older_adult",
    "picu",
)
Kind = Literal["s136_suite", "crisis_house", "community_bed", "respite", "acute_adult", "acute_older_adult", "picu"]
# Inpatient kinds (MHSDS hospital bed types 200, 201, 202): an out-of-area placement needs a reason.
ACUTE_KINDS = frozenset({"acute_adult", "acute_older_adult", "picu"})

ROLES = ("bed_manager", "amhp", "conveyance", "commissioner", "admin")
Role = Literal["bed_manager", "amhp", "conveyance", "commissioner", "admin"]

Sector = Literal["nhs", "private", "voluntary"]
UnitSex = Literal["any", "female", "male"]
UnitStatus = Literal["open", "closed"]
ClosedReason = Literal["staffing", "maintenance", "infection_control", "other"]
