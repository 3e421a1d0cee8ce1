"""The `capacity` command: serve, migrate, demo (and, as they arrive, import and watch)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from capacity.demo import BANNER
from capacity.settings import Settings, SettingsError

if TYPE_CHECKING:
    from datetime import datetime

    from alembic.config import Config
    from litestar import Litestar
    from rich.progress import TaskID

    from capacity.admin.schemas import UserIn
    from capacity.imports.placements import ImportSummary
    from capacity.imports.reference import ReferenceSummary

# alembic.ini and migrations/ ship inside the package (pyproject package-data), so an installed wheel
# can migrate. The ini's script_location is relative to the ini itself (%(here)s).
PACKAGE = Path(__file__).resolve().parent
ALEMBIC_INI = PACKAGE / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.attributes["database_url"] = database_url
    return config


def migrate_to_head(database_url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")


def _load_demo(settings: Settings) -> tuple[bool, str | None]:
    """Load the demo set into an empty database (and make its random signing key); whether it was
    loaded, and the database's demo key (None when it holds anything but the demo set)."""
    from capacity.auth.keys import demo_key_of, store_demo_key
    from capacity.db.engine import Database
    from capacity.demo import USERS, load_demo

    async def run() -> tuple[bool, str | None]:
        db = Database(settings)
        try:
            loaded = await load_demo(db, db.clock.now())
            if loaded:
                await store_demo_key(db)
            return loaded, await demo_key_of(db, (username for username, *_ in USERS))
        finally:
            await db.dispose()

    return asyncio.run(run())


@click.group()
def main() -> None:
    """capacity: live booking of mental-health crisis places."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Load fictional demo data and users into an empty database.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes; exactly one of all of them (and of every instance) runs the sweep.",
)
def serve(host: str, port: int, demo: bool, workers: int) -> None:
    """Migrate the database to head, then serve the API."""
    import uvicorn

    from capacity.app import create_app
    from capacity.logs import configure as configure_logging

    settings = Settings.from_env(demo=demo)
    try:
        settings.signing_key()
    except SettingsError as exc:
        raise click.ClickException(f"{exc}. Set it, or run with --demo for fictional data.") from None
    configure_logging(settings.log_format)  # uvicorn's lines too (log_config=None below); each worker's app again
    migrate_to_head(settings.database_url)
    if demo:
        click.secho(BANNER, fg="red", bold=True, err=True)
        loaded, demo_key = _load_demo(settings)
        if loaded:
            click.echo(
                "Loaded the demo data set. Log in as admin, amhp, bedmanager, commissioner or "
                "conveyance, password 'demo'.",
                err=True,
            )
        else:
            click.echo("The database already has data: demo data not loaded.", err=True)
        if demo_key is None and not settings.secret_key:
            raise click.ClickException(
                "the database holds data other than the demo set: refusing to serve it in demo mode without "
                "a real CAPACITY_SECRET_KEY (set one, or use an empty database for the demo)"
            )
        if demo_key is not None:
            settings = dataclasses.replace(settings, demo_key=demo_key)
    logging.getLogger("capacity").info(
        "capacity on http://%s:%d/  (API schema: http://%s:%d/schema)", host, port, host, port
    )
    # Event frames are a few hundred bytes: per-message compression would cost ~40 KB per socket and a
    # third of the fan-out CPU for little gain. uvicorn's own X-Forwarded-For handling is off: the app
    # reads the header only from CAPACITY_TRUSTED_PROXIES (capacity.app). A message over 64 KB is closed
    # 1009 by the server before it is buffered whole (the app checks too, capacity.notify.ws).
    server = dict(
        host=host,
        port=port,
        log_level="info",
        log_config=None,
        ws_per_message_deflate=False,
        proxy_headers=False,
        ws_max_size=64 * 1024,
        # SIGTERM: the sockets are closed 1001 (capacity.shutdown), new connections refused, and the
        # requests in flight given this long to finish.
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )
    if workers == 1:
        uvicorn.run(create_app(settings), **server)  # type: ignore[arg-type]
        return
    # Each worker process makes its own app from the environment, which it inherits from this one.
    os.environ[WORKER_DEMO] = "1" if demo else ""
    os.environ[WORKER_DEMO_KEY] = settings.demo_key if demo else ""
    uvicorn.run("capacity.cli:worker_app", factory=True, workers=workers, **server)  # type: ignore[arg-type]


GRACEFUL_SECONDS = 20
WORKER_DEMO, WORKER_DEMO_KEY = "CAPACITY_WORKER_DEMO", "CAPACITY_WORKER_DEMO_KEY"


def worker_app() -> Litestar:
    """The app of one `capacity serve --workers N` process: the settings `serve` checked, from the
    environment it passed down."""
    from capacity.app import create_app

    demo = os.environ.get(WORKER_DEMO) == "1"
    settings = Settings.from_env(demo=demo)
    if demo and os.environ.get(WORKER_DEMO_KEY):
        settings = dataclasses.replace(settings, demo_key=os.environ[WORKER_DEMO_KEY])
    return create_app(settings)


@main.command()
@click.option(
    "--out",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write snapshot-<time>.html and .csv.",
)
def snapshot(directory: Path) -> None:
    """Write the live board (units and figures, holds, running s136 clocks) as a printable page and CSV."""
    from capacity.snapshot import take, write

    async def run() -> tuple[Path, Path]:
        from capacity.db.engine import Database

        db = Database(Settings.from_env())
        try:
            return write(await take(db), directory)
        finally:
            await db.dispose()

    for path in asyncio.run(run()):
        click.echo(str(path))


@main.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision (Alembic)."""
    settings = Settings.from_env()
    migrate_to_head(settings.database_url)
    click.echo("database at head")


@main.command()
def demo() -> None:
    """Load the demo data set and users into an empty database."""
    settings = Settings.from_env(demo=True)
    migrate_to_head(settings.database_url)
    click.secho(BANNER, fg="red", bold=True, err=True)
    if not _load_demo(settings)[0]:
        click.echo("The database already has data: demo data not loaded.", err=True)
        sys.exit(1)
    click.echo("Loaded the demo data set.")


@main.group()
def admin() -> None:
    """Administration from the command line (the first admin of a real deployment is made here)."""


@admin.command(name="create-user")
@click.argument("username")
@click.option("--role", required=True, help="admin, amhp, bed_manager, conveyance or commissioner.")
@click.option("--area", "areas", multiple=True, help="An area the user works for (ONS code); repeatable.")
@click.option("--provider", "provider_id", default=None, help="A bed manager's provider (id).")
@click.option("--name", "display_name", default=None, help="The person's name, as others see it.")
@click.option("--email", default=None, help="The e-mail single sign-on matches them by.")
def create_user(
    username: str,
    role: str,
    areas: tuple[str, ...],
    provider_id: str | None,
    display_name: str | None,
    email: str | None,
) -> None:
    """Make a user and print their one-time set-password link (valid 24 hours, single use)."""
    import msgspec

    from capacity.admin.schemas import UserIn
    from capacity.errors import DomainError

    try:
        body = msgspec.convert(
            {
                "username": username,
                "role": role,
                "areas": list(areas),
                "provider_id": provider_id,
                "display_name": display_name,
                "email": email,
            },
            UserIn,
        )
    except msgspec.ValidationError as exc:
        raise click.ClickException(str(exc)) from None
    settings = Settings.from_env()
    migrate_to_head(settings.database_url)
    try:
        url, expires_at = asyncio.run(_create_user(settings, body))
    except DomainError as exc:
        raise click.ClickException(f"{exc.field + ': ' if exc.field else ''}{exc.detail}") from None
    click.echo(f"made {role} {username}; they set their password at (valid until {expires_at:%Y-%m-%d %H:%M} UTC):")
    click.echo(url)


async def _create_user(settings: Settings, body: UserIn) -> tuple[str, datetime]:
    from capacity.admin.service import create_user
    from capacity.auth.scope import CLI_ADMIN
    from capacity.db.engine import Database

    db = Database(settings)
    try:
        _, link = await create_user(db, CLI_ADMIN, body)
        return link.url, link.expires_at
    finally:
        await db.dispose()


@main.group(name="import")
def import_() -> None:
    """Load history from files."""


@import_.command(name="placements")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
def import_placements(file: Path) -> None:
    """Import historical placements from FILE.csv, all or nothing (see README, "Importing history")."""
    from sqlalchemy.exc import DBAPIError

    from capacity.errors import ServiceBusy
    from capacity.imports.placements import ImportRefused

    settings = Settings.from_env()
    try:
        summary = asyncio.run(_run_import(settings, file))
    except ImportRefused as exc:
        raise click.ClickException(exc.report()) from None
    except ServiceBusy:
        raise click.ClickException("the database stayed busy; nothing was imported. Try again.") from None
    except DBAPIError as exc:
        raise click.ClickException(
            f"the database refused the import, so nothing was imported ({exc.orig}). Is it migrated (capacity migrate)?"
        ) from None
    click.echo(str(summary))


async def _run_import(settings: Settings, file: Path) -> ImportSummary:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from capacity.db.engine import Database
    from capacity.imports.placements import import_placements

    db = Database(settings)
    columns = (TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    label = "checking" if phase == "check" else "writing"
                    tasks[phase] = bar.add_task(label, total=total)
                bar.update(tasks[phase], completed=done, total=total)

            return await import_placements(db, file, progress=progress)
    finally:
        await db.dispose()


@import_.command(name="reference")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and print what would change; write nothing.")
def import_reference(file: Path, dry_run: bool) -> None:
    """Load areas, providers and units from FILE.csv, all or nothing, matched by code (see README,
    "Reference data"). Importing the same file again changes nothing."""
    from sqlalchemy.exc import DBAPIError

    from capacity.errors import ServiceBusy
    from capacity.imports.placements import ImportRefused

    settings = Settings.from_env()
    migrate_to_head(settings.database_url)
    try:
        summary = asyncio.run(_run_reference_import(settings, file, dry_run))
    except ImportRefused as exc:
        raise click.ClickException(exc.report()) from None
    except ServiceBusy:
        raise click.ClickException("the database stayed busy; nothing was imported. Try again.") from None
    except DBAPIError as exc:
        raise click.ClickException(f"the database refused the import, so nothing was imported ({exc.orig})") from None
    click.echo(str(summary))


async def _run_reference_import(settings: Settings, file: Path, dry_run: bool) -> ReferenceSummary:
    from capacity.db.engine import Database
    from capacity.imports.reference import import_reference

    db = Database(settings)
    try:
        return await import_reference(db, file, dry_run=dry_run)
    finally:
        await db.dispose()


@main.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The service's base URL.")
@click.option("--username", prompt=True, help="Your username.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    envvar="CAPACITY_WATCH_PASSWORD",
    help="Your password (prompted for if not given; or set CAPACITY_WATCH_PASSWORD).",
)
@click.option("--area", "areas", multiple=True, help="Only events in this area (ONS code); repeatable.")
@click.option("--unit", "units", multiple=True, help="Only events about this unit (id); repeatable.")
@click.option("--provider", "providers", multiple=True, help="Only events of this provider (id); repeatable.")
@click.option(
    "--retries",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="Reconnection attempts in a row before giving up.",
)
def watch(
    url: str,
    username: str,
    password: str,
    areas: tuple[str, ...],
    units: tuple[str, ...],
    providers: tuple[str, ...],
    retries: int,
) -> None:
    """Log in and print the live event stream, one readable line per event (Ctrl-C to stop)."""
    from capacity.notify.watch import WatchError, options_from
    from capacity.notify.watch import watch as run_watch

    options = options_from(url, username, password, areas, units, providers, retries)
    try:
        code = asyncio.run(run_watch(options))
    except WatchError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        code = 0
    sys.exit(code)
