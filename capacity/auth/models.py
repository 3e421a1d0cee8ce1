"""Users of the system (staff, never the people in crisis), and what is kept about their logins and tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from capacity.codes import Role, check_in
from capacity.db.base import Base, IdMixin


class UserArea(Base):
    __tablename__ = "user_areas"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    area_code: Mapped[str] = mapped_column(ForeignKey("areas.code"), primary_key=True)


class User(IdMixin, Base):
    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    display_name: Mapped[str | None] = mapped_column(String(120))
    # Recorded by an admin: how single sign-on matches a person to this user (never auto-created).
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    # Or the provider's own identifier of the person (the ID token's `sub`), when email is not enough.
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    area_links: Mapped[list[UserArea]] = relationship(lazy="selectin", cascade="all, delete-orphan")

    __table_args__ = (
        check_in("role", Role),
        # A bed manager belongs to exactly one provider.
        CheckConstraint("role != 'bed_manager' or provider_id is not null", name="bed_manager_provider"),
    )

    @property
    def areas(self) -> list[str]:
        return sorted(link.area_code for link in self.area_links)


class RevokedToken(Base):
    """The denylist when no Redis is configured (capacity.auth.revocation): `token:<jti>` revokes one token,
    `user:<id>` every token of that user issued at or before `revoked_at`. Kept until `expires_at`, when
    every token it could refuse has expired anyway."""

    __tablename__ = "revoked_tokens"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    revoked_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class LoginFailure(Base):
    """One failed login, counted against `user:<name>` or `addr:<address>` when no Redis is configured
    (capacity.auth.throttle); rows older than the lockout window are deleted as new ones arrive."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    failed_at: Mapped[datetime] = mapped_column(index=True)
    __table_args__ = (Index("ix_login_failures_key_failed_at", "key", "failed_at"),)


class ServiceKey(Base):
    """Secrets the service makes for itself: the demo database's own signing key (capacity.auth.keys)."""

    __tablename__ = "service_keys"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class SearchRecorded(Base):
    """When a user's search (by a hash of the user and the query, nothing readable) last recorded
    unmet demand: the same search is recorded once per window (capacity.booking.units.service)."""

    __tablename__ = "searches_recorded"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)


class PasswordToken(Base):
    """A one-time set-password link (a new user's first, or a reset): only its SHA-256 is kept, it is
    valid 24 hours and spent by its first use; issuing a new one spends the user's earlier ones."""

    __tablename__ = "password_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
