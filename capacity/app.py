"""create_app(settings) -> Litestar: plugins, routes and lifespans; nothing else."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar, get
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from capacity.audit.controllers import AuditController
from capacity.auth.controllers import AuthController
from capacity.auth.security import LoginThrottle, make_jwt_auth
from capacity.booking.detentions.controllers import DetentionController
from capacity.booking.holds.controllers import HoldController
from capacity.booking.placements.controllers import PlacementController
from capacity.booking.units.controllers import ReferenceController, UnitController
from capacity.clock import Clock
from capacity.db.engine import Database
from capacity.deps import dependencies
from capacity.errors import internal_error_handler, problem_details
from capacity.notify.channels import make_channels, make_publisher
from capacity.notify.scheduler import make_scheduler
from capacity.notify.ws import events_socket
from capacity.reports.controllers import ReportController
from capacity.settings import Settings
from capacity.web.controllers import WebController
from capacity.web.csrf import BrowserCSRFMiddleware, csrf_config

WEB = Path(__file__).parent / "web"


@get("/health", summary="Liveness", tags=["Service"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    jwt_auth = make_jwt_auth(settings.signing_key(), settings.token_minutes, secure_cookie=settings.secure_cookies)
    db = Database(settings, clock)
    channels = make_channels(settings)
    db.publish = make_publisher(channels)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        scheduler = make_scheduler(db)
        scheduler.start()
        # Objects made at start-up live for ever: keep them out of later full collections. A fan-out to
        # thousands of sockets makes many short-lived objects; a higher threshold lets them die young
        # instead of triggering collections that stall every stream (measured by bench/fanout.py).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 10, 10)
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            await db.dispose()

    app = Litestar(
        route_handlers=[
            health,
            AuthController,
            ReferenceController,
            UnitController,
            HoldController,
            PlacementController,
            DetentionController,
            AuditController,
            ReportController,
            events_socket,
            WebController,
            create_static_files_router(path="/static", directories=[WEB / "static"], include_in_schema=False),
        ],
        middleware=[
            DefineMiddleware(BrowserCSRFMiddleware, config=csrf_config(settings.signing_key(), settings.secure_cookies))
        ],
        template_config=TemplateConfig(directory=WEB / "templates", engine=JinjaTemplateEngine),
        dependencies=dependencies,
        plugins=[problem_details, channels],
        on_app_init=[jwt_auth.on_app_init],
        exception_handlers={Exception: internal_error_handler},
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="capacity",
            version="0.1.0",
            description="Live booking of mental-health crisis places in England.",
            path="/schema",
            components=Components(security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}),
        ),
    )
    app.state.settings = settings
    app.state.db = db
    app.state.clock = db.clock
    app.state.jwt_auth = jwt_auth
    app.state.channels = channels
    app.state.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_lockout_seconds)
    return app
