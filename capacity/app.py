"""create_app(settings) -> Litestar: plugins, routes and lifespans; nothing else."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from redis.asyncio import Redis
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from capacity.admin.controllers import AdminController, PasswordController
from capacity.alternatives.controllers import AdminAlternativeController, AlternativeController
from capacity.audit.controllers import AuditController
from capacity.auth.controllers import AuthController
from capacity.auth.oidc import SingleSignOn
from capacity.auth.revocation import make_revocations
from capacity.auth.security import make_jwt_auth
from capacity.auth.throttle import PasswordChecks, make_throttle
from capacity.booking.detentions.controllers import DetentionController
from capacity.booking.escalation.controllers import EscalationController
from capacity.booking.holds.controllers import HoldController
from capacity.booking.placements.controllers import PlacementController
from capacity.booking.units.controllers import ReferenceController, UnitController
from capacity.booking.units.read_model import ReadModel
from capacity.clock import Clock
from capacity.db.engine import Database
from capacity.deps import dependencies
from capacity.errors import internal_error_handler, problem_details
from capacity.fhir.controllers import fhir_router
from capacity.health import health, ready
from capacity.limits import check_body_depth
from capacity.logs import configure as configure_logging
from capacity.logs import request_ids
from capacity.metrics import Metrics, metrics_endpoint
from capacity.notify.channels import CHANNEL, Bus, make_channels, make_publisher
from capacity.notify.hub import Hub
from capacity.notify.leader import sweep_lock
from capacity.notify.scheduler import make_scheduler
from capacity.notify.ws import events_socket
from capacity.openapi import document_errors, openapi_config
from capacity.region.controllers import RegionController
from capacity.reports.controllers import ReportController
from capacity.settings import Settings
from capacity.shutdown import close_sockets_first
from capacity.web.controllers import WebController
from capacity.web.csrf import BrowserCSRFMiddleware, csrf_config

WEB = Path(__file__).parent / "web"


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    jwt_auth = make_jwt_auth(settings.signing_key(), settings.token_minutes, secure_cookie=settings.secure_cookies)
    db = Database(settings, clock)
    bus = Bus()
    channels = make_channels(settings, bus)
    metrics = Metrics()
    db.publish = metrics.publisher(make_publisher(channels))
    read_model = ReadModel(db, channels, bus)
    hub = Hub(channels, bus, recheck_seconds=settings.ws_recheck_seconds, max_backlog=settings.ws_max_backlog)
    csrf = csrf_config(settings.signing_key(), settings.secure_cookies)
    # Shared by the denylist and the login throttle (the channels plugin has its own connection).
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    password_checks = PasswordChecks(settings.login_concurrency, settings.login_queue)
    configure_logging(settings.log_format)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        lock = sweep_lock(db.engine)
        scheduler = make_scheduler(db, lock)
        metrics.watch_scheduler(scheduler)
        scheduler.start()
        restore_signals = close_sockets_first(hub)
        # Objects made at start-up live for ever: keep them out of later full collections. A fan-out to
        # thousands of sockets makes many short-lived objects; a higher threshold lets them die young
        # instead of triggering collections that stall every stream (measured by bench/fanout.py).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 10, 10)
        try:
            yield
        finally:
            restore_signals()
            scheduler.shutdown(wait=False)
            await lock.release()
            password_checks.close()
            if redis is not None:
                await redis.aclose()
            await db.dispose()

    async def start_event_lag() -> None:  # once the channels have started (after the lifespans)
        await metrics.start_event_lag(channels, CHANNEL)

    app = Litestar(
        route_handlers=[
            health,
            ready,
            metrics_endpoint,
            AuthController,
            ReferenceController,
            UnitController,
            HoldController,
            PlacementController,
            DetentionController,
            AuditController,
            ReportController,
            EscalationController,
            RegionController,
            AdminController,
            AlternativeController,
            AdminAlternativeController,
            PasswordController,
            events_socket,
            WebController,
            fhir_router(),
            create_static_files_router(path="/static", directories=[WEB / "static"], include_in_schema=False),
        ],
        middleware=[
            # The client address is X-Forwarded-For's only when the peer is a trusted proxy (uvicorn's own
            # handling of the header is off in `capacity serve`, so this is the one place it is read).
            DefineMiddleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies)),  # type: ignore[arg-type]
            DefineMiddleware(BrowserCSRFMiddleware, config=csrf),
        ],
        before_request=check_body_depth,
        template_config=TemplateConfig(directory=WEB / "templates", engine=JinjaTemplateEngine),
        dependencies=dependencies,
        plugins=[problem_details, channels],
        logging_config=None,  # capacity.logs configures every logger, Litestar's too
        on_app_init=[jwt_auth.on_app_init],
        exception_handlers={Exception: internal_error_handler},
        lifespan=[lifespan],
        on_startup=[start_event_lag, read_model.start],
        on_shutdown=[metrics.stop_event_lag, hub.stop, read_model.stop],
        openapi_config=openapi_config(),  # Swagger UI from the app's own files at /schema
    )
    document_errors(app)  # every operation's problem details, by one rule per status
    app.state.settings = settings
    app.state.db = db
    app.state.clock = db.clock
    app.state.jwt_auth = jwt_auth
    app.state.channels = channels
    app.state.bus = bus
    app.state.read_model = read_model
    app.state.redis = redis
    app.state.revocations = make_revocations(db, redis, settings.token_minutes * 60)
    app.state.login_throttle = make_throttle(db, redis, settings)
    app.state.password_checks = password_checks
    app.state.sso = SingleSignOn(settings) if settings.oidc_issuer else None
    app.state.hub = hub
    app.state.metrics = metrics
    metrics.watch_state(app.state)
    # Outside the router and its exception handling, so that every answer is counted as it was sent;
    # outermost of all, the request id, bound to every line written while a request is handled.
    app.asgi_handler = request_ids(metrics.asgi(app.asgi_handler))
    return app
