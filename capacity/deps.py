"""Dependencies every controller may ask for by name: `db`, `settings`, `actor`.

There is no `clock`: services read it through their unit of work or read, and return the `now` they used."""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from capacity.auth.security import Actor
from capacity.db.engine import Database
from capacity.settings import Settings


def _db(state: State) -> Database:
    return state.db


def _settings(state: State) -> Settings:
    return state.settings


def _actor(request: Request[Any, Any, Any]) -> Actor:
    return request.user


dependencies = {
    "db": Provide(_db, sync_to_thread=False),
    "settings": Provide(_settings, sync_to_thread=False),
    "actor": Provide(_actor, sync_to_thread=False),
}

# What a handler's parameters say: `db: DbDep, actor: ActorDep` (the parameter's name picks the dependency).
DbDep: TypeAlias = NamedDependency[Database]
ActorDep: TypeAlias = NamedDependency[Actor]
SettingsDep: TypeAlias = NamedDependency[Settings]
