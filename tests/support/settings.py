"""Settings for an app under test: a database URL, a fixed signing key, and any overrides."""

from __future__ import annotations

from typing import Any

from capacity.settings import Settings


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, secret_key="test-signing-key-" + "x" * 32, **overrides)
