"""Every SQL statement an app under test sends to its database, heard on its real engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import event

if TYPE_CHECKING:
    from support.api import Api


class Statements:
    """Every SQL statement the app sends to its database, from now on, in order."""

    def __init__(self, api: Api) -> None:
        self.sent: list[str] = []
        # Its autocommit engine is the same engine with other options: one listener hears both.
        event.listen(api.db.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement: str, *_args) -> None:
        self.sent.append(statement)

    def naming(self, table: str) -> list[str]:
        """The statements that name the table."""
        return [s for s in self.sent if table in s]
