"""Person data: the minimum the law and DOMAIN.md allow, and nothing that identifies someone directly."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

# NHS ethnic category codes (NHS Data Dictionary): A-H, J-N, P, R, S, Z (not stated).
Ethnicity = Literal["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z"]
PersonSex = Literal["female", "male", "other", "unknown"]
RiskFlag = Literal["violence", "self_harm", "substance_use"]
HOME_AREA = Annotated[str, Meta(pattern=r"^[EWSN]\d{8}$", description="ONS code of the person's home area")]


class PersonIn(msgspec.Struct, forbid_unknown_fields=True):
    ref: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=40,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9/_.-]*$",
            description="pseudonymous local reference; never an NHS number or a name",
        ),
    ]
    age: Annotated[int, Meta(ge=0, le=120)]
    sex: PersonSex
    home_area: HOME_AREA
    ethnicity: Ethnicity | None = None


class PersonOut(msgspec.Struct):
    ref: str
    age: int
    sex: str
    ethnicity: str | None
    home_area: str


def looks_like_nhs_number(value: str) -> bool:
    """Ten digits (spaces or dashes allowed) that pass the NHS number modulus 11 check."""
    digits = re.sub(r"[\s-]", "", value)
    if not re.fullmatch(r"\d{10}", digits):
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def person_columns(person: PersonIn) -> dict:
    return dict(
        person_ref=person.ref,
        person_age=person.age,
        person_sex=person.sex,
        person_ethnicity=person.ethnicity,
        home_area=person.home_area,
    )


def person_out(row: PersonMixin) -> PersonOut:
    return PersonOut(row.person_ref, row.person_age, row.person_sex, row.person_ethnicity, row.home_area)


class PersonMixin:
    """The minimum person data (DOMAIN.md): a pseudonymous reference, never a name or NHS number."""

    person_ref: Mapped[str] = mapped_column(String(40))
    person_age: Mapped[int] = mapped_column(Integer)
    person_sex: Mapped[str] = mapped_column(String(8))
    person_ethnicity: Mapped[str | None] = mapped_column(String(2))
    home_area: Mapped[str] = mapped_column(ForeignKey("areas.code"))


Note = Annotated[str, Meta(max_length=280)]
