"""Who made a declaration and when: the columns every declaration keeps (a unit's figures, a provider's
escalation level)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column


class DeclaredMixin:
    declared_at: Mapped[datetime]
    declared_by: Mapped[str] = mapped_column(String(80))
