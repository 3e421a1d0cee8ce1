"""One typed settings object, read from CAPACITY_* environment variables (see API.md)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from capacity.codes import KINDS

DEFAULT_HOLD_SECONDS = {
    "s136_suite": 60 * 60,
    "crisis_house": 4 * 3600,
    "community_bed": 4 * 3600,
    "respite": 24 * 3600,
    "acute_adult": 4 * 3600,
    "acute_older_adult": 4 * 3600,
    "picu": 4 * 3600,
}
# 136 suites must be confirmed far more often than beds: they are needed 24/7.
DEFAULT_STALE_MINUTES = {kind: (4 * 60 if kind == "s136_suite" else 8 * 60) for kind in KINDS}


class SettingsError(ValueError):
    """A CAPACITY_* variable holds a value the service cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _proxies(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated addresses or networks (CIDR), or `*` for any peer; empty: trust none."""
    items = tuple(item.strip() for item in (env.get(name) or "").split(",") if item.strip())
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(f"{name} must list IP addresses or networks (CIDR), not {item!r}") from None
    return items


def _oidc(env: Mapping[str, str]) -> dict[str, str | None]:
    """Single sign-on is on when the issuer is set, and then needs this service's client id and secret."""
    names = ("CAPACITY_OIDC_ISSUER", "CAPACITY_OIDC_CLIENT_ID", "CAPACITY_OIDC_CLIENT_SECRET")
    issuer, client_id, secret = (env.get(name) or None for name in names)
    if issuer is None:
        return {}
    if not issuer.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise SettingsError(f"CAPACITY_OIDC_ISSUER must be an https:// URL, not {issuer!r}")
    for name, value in zip(names[1:], (client_id, secret), strict=True):
        if value is None:
            raise SettingsError(f"{name} must be set when CAPACITY_OIDC_ISSUER is")
    return {"oidc_issuer": issuer, "oidc_client_id": client_id, "oidc_client_secret": secret}


# The whole-number settings read from CAPACITY_<NAME> (the field's name in capitals), each with
# the least value it may take; unset or empty, a setting keeps its default.
_WHOLE_NUMBERS: dict[str, int] = {
    "escalation_stale_minutes": 1,
    "ambulance_standard_minutes": 1,
    "sweep_seconds": 1,
    "token_minutes": 1,
    "max_hold_extensions": 0,
    "max_hold_extension_minutes": 0,
    "eta_grace_minutes": 0,
    "login_max_failures": 1,
    "login_max_failures_per_address": 1,
    "login_lockout_seconds": 0,
    "login_concurrency": 1,
    "login_queue": 0,
    "ws_max_backlog": 1,
    "read_model_reconcile_seconds": 1,
    "write_attempts": 1,
    "lock_timeout_ms": 1,
    "db_pool_size": 1,
    "db_max_overflow": 0,
    "hold_expiring_minutes": 1,
}


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///capacity.db"
    redis_url: str | None = None
    secret_key: str | None = None
    demo: bool = False
    hold_seconds: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_HOLD_SECONDS))
    stale_minutes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_STALE_MINUTES))
    # A provider's escalation level older than this is shown as stale: OPEL is reviewed at least twice a day.
    escalation_stale_minutes: int = 12 * 60
    ambulance_standard_minutes: int = 30
    sweep_seconds: int = 5
    token_minutes: int = 12 * 60
    # Hold extensions: how many, and how much time in all, beyond the first hold.
    max_hold_extensions: int = 3
    max_hold_extension_minutes: int = 240
    # A reported ETA extends a hold to ETA plus this grace.
    eta_grace_minutes: int = 15
    # Failed logins per username (from anywhere), and per client address (for any username), within
    # the lockout window, before further attempts are refused until the oldest ages out of it.
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_lockout_seconds: int = 300
    # Password checks (argon2) run at once in this process, and how many more may wait for one; beyond
    # that a login is answered 503 at once, so a flood of logins cannot take the CPU from bookings.
    login_concurrency: int = 1
    login_queue: int = 32
    # Peers whose X-Forwarded-For names the client (the reverse proxy): addresses, CIDR networks or `*`.
    trusted_proxies: tuple[str, ...] = ()
    # How often each instance re-checks its open WebSockets' tokens (revoked, expired, user changed).
    ws_recheck_seconds: float = 2.0
    # How often each instance's availability read model (which the units search answers from) is
    # reconciled in full with the database: the longest a missed event can leave it wrong.
    read_model_reconcile_seconds: int = 30
    # Attempts at a write transaction that meets a lock timeout or SQLITE_BUSY before answering 503.
    write_attempts: int = 5
    lock_timeout_ms: int = 2000
    # PostgreSQL connection pool, per process: kept connections, extra ones under load, and how long a
    # request waits for a free one (or for a new connection to open) before it is answered 503.
    db_pool_size: int = 20
    db_max_overflow: int = 20
    db_pool_timeout_seconds: float = 10.0
    # GET /metrics answers loopback callers, and others that present this token as a Bearer token.
    metrics_token: str | None = field(default=None, repr=False)
    # Live stream: events queued for one WebSocket before a client that lags is closed to resync.
    ws_max_backlog: int = 1000
    # Alerts: a hold expiring within this many minutes; s136 warnings this many minutes before the deadline.
    hold_expiring_minutes: int = 10
    # Browser session and CSRF cookies: Secure unless demo mode or CAPACITY_SECURE_COOKIES=false (plain http).
    secure_cookies: bool = True
    s136_warning_minutes: tuple[int, ...] = (120, 30)
    # Where people reach the service: the start of the one-time set-password links it hands out.
    public_url: str = "http://localhost:8000"
    # How long a one-time set-password link stays valid.
    password_link_hours: int = 24
    # Single sign-on (OpenID Connect), optional: the provider's issuer URL and this service's client there.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    # Log lines on stderr: `json` (one object a line) or `console` (readable); unset: console in demo mode.
    log_format: str = "json"
    # Demo mode's signing key when CAPACITY_SECRET_KEY is unset: random, never a public constant.
    # `capacity serve --demo` replaces it with the key stored in the demo database (capacity.auth.keys).
    demo_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        hold = dict(DEFAULT_HOLD_SECONDS)
        stale = dict(DEFAULT_STALE_MINUTES)
        for kind in KINDS:
            hold[kind] = _int(env, f"CAPACITY_HOLD_SECONDS_{kind.upper()}", hold[kind], minimum=1)
            stale[kind] = _int(env, f"CAPACITY_STALE_MINUTES_{kind.upper()}", stale[kind], minimum=1)
        values: dict[str, object] = {
            name: _int(env, f"CAPACITY_{name.upper()}", getattr(cls, name), minimum)
            for name, minimum in _WHOLE_NUMBERS.items()
        }
        values.update(
            database_url=env.get("CAPACITY_DATABASE_URL") or cls.database_url,
            redis_url=env.get("CAPACITY_REDIS_URL") or None,
            secret_key=env.get("CAPACITY_SECRET_KEY") or None,
            hold_seconds=hold,
            stale_minutes=stale,
            trusted_proxies=_proxies(env, "CAPACITY_TRUSTED_PROXIES"),
            db_pool_timeout_seconds=float(
                _int(env, "CAPACITY_DB_POOL_TIMEOUT", int(cls.db_pool_timeout_seconds), minimum=1)
            ),
            metrics_token=env.get("CAPACITY_METRICS_TOKEN") or None,
            public_url=(env.get("CAPACITY_PUBLIC_URL") or cls.public_url).rstrip("/"),
            **_oidc(env),
        )
        values["secure_cookies"] = env.get("CAPACITY_SECURE_COOKIES", "").lower() not in ("0", "false", "no")
        log_format = (env.get("CAPACITY_LOG_FORMAT") or "").strip().lower()
        if log_format and log_format not in ("json", "console"):
            raise SettingsError(f"CAPACITY_LOG_FORMAT must be json or console, not {log_format!r}")
        values.update(overrides)
        if "log_format" not in values:
            values["log_format"] = log_format or ("console" if values.get("demo") else "json")
        if values.get("demo") and "CAPACITY_SECURE_COOKIES" not in env and "secure_cookies" not in overrides:
            values["secure_cookies"] = False  # the demo is served over plain http
        return cls(**values)  # type: ignore[arg-type]

    @property
    def oidc_redirect_uri(self) -> str:
        return f"{self.public_url}/login/oidc/callback"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def signing_key(self) -> str:
        """The token signing key; demo mode falls back to the demo database's own random key."""
        if self.secret_key:
            return self.secret_key
        if self.demo:
            return self.demo_key
        raise SettingsError("CAPACITY_SECRET_KEY must be set outside demo mode")
