"""The FHIR R4 read API under /fhir: read and search of Location, Organization, HealthcareService,
Schedule and Slot, and the CapabilityStatement at /fhir/metadata (JSON only, `application/fhir+json`).

Authentication is the REST API's (a bearer token or the session cookie); /fhir/metadata is open, as a
FHIR server's is. Every error under /fhir is an OperationOutcome with the status, title and detail the
REST API's problem details would have had (the same handlers decide them, 503 Retry-After included).
The routes are not in the OpenAPI document: the CapabilityStatement describes them.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from litestar import Controller, Request, Response, Router, get, route
from litestar.datastructures import State
from litestar.exceptions import HTTPException, MethodNotAllowedException
from litestar.params import FromPath
from litestar.plugins.problem_details import ProblemDetailsException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from capacity.db.engine import Database
from capacity.errors import DomainError, NotFound, ServiceBusy, internal_error_handler
from capacity.fhir import resources as r
from capacity.fhir import service
from capacity.settings import Settings


def fhir_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=r.MEDIA_TYPE, headers=headers)


def _app_handler(request: Request, exc: Exception) -> Any:
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return internal_error_handler


def operation_outcome_handler(request: Request, exc: Exception) -> Response:
    """What the app's own handler answers (problem details), said as an OperationOutcome."""
    problem = _app_handler(request, exc)(request, exc)
    content = problem.content if isinstance(problem.content, dict) else {}
    status = problem.status_code
    title = str(content.get("title") or HTTPStatus(status).phrase)
    detail = str(content.get("detail") or title)
    code = "not-supported" if status == 400 and "not support" in detail else None
    headers = {k: v for k, v in dict(problem.headers or {}).items() if k.lower() != "content-type"}
    return fhir_response(r.operation_outcome(status, title, detail, code), status, headers)


# Every exception type the app maps to problem details (capacity.errors, the problem details plugin),
# so that under /fhir this handler, not the app's, is the most specific one for each.
OUTCOME_HANDLERS = {
    exc_type: operation_outcome_handler
    for exc_type in (
        Exception,
        HTTPException,
        ProblemDetailsException,
        DomainError,
        ServiceBusy,
        DBAPIError,
        PoolTimeout,
        OSError,
    )
}


def capability_statement(settings: Settings, now: str) -> dict[str, Any]:
    resources = []
    for resource_type, params in service.SEARCH_PARAMS.items():
        resources.append(
            {
                "type": resource_type,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "versioning": "no-version",
                "readHistory": False,
                "updateCreate": False,
                "searchParam": [
                    {"name": name, "type": param.type, "documentation": param.documentation}
                    for name, param in params.items()
                ],
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now,
        "publisher": "capacity",
        "kind": "instance",
        "software": {"name": "capacity", "version": "0.1.0"},
        "implementation": {
            "description": "Live mental-health crisis places: units, providers, services and their places (read-only)",
            "url": f"{settings.public_url}/fhir",
        },
        "fhirVersion": r.FHIR_VERSION,
        "format": [r.MEDIA_TYPE, "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Read-only. Search parameters not listed are refused (400 OperationOutcome).",
                "security": {
                    "cors": False,
                    "description": "A bearer token from POST /api/auth/token (Authorization: Bearer), as for "
                    "the REST API; any role may read. /fhir/metadata needs none.",
                },
                "resource": resources,
            }
        ],
    }


def _base(settings: Settings) -> str:
    return f"{settings.public_url}/fhir"


def _resource_type(resource_type: str) -> str:
    if resource_type not in service.RESOURCE_TYPES:
        raise NotFound(
            f"resource type {resource_type!r} is not served here; served: {', '.join(service.RESOURCE_TYPES)}"
        )
    return resource_type


class FhirController(Controller):
    path = "/"

    @get("/metadata", opt={"exclude_from_auth": True}, sync_to_thread=False)
    def metadata(self, state: State) -> Response:
        return fhir_response(capability_statement(state.settings, r.instant(state.clock.now())))

    @get("/{resource_type:str}")
    async def search(self, request: Request, state: State, resource_type: FromPath[str]) -> Response:
        db: Database = state.db
        found = await service.search(db, _resource_type(resource_type), list(request.query_params.multi_items()))
        self_url = f"{_base(state.settings)}/{resource_type}" + (f"?{request.url.query}" if request.url.query else "")
        return fhir_response(r.bundle(_base(state.settings), self_url, found))

    @get("/{resource_type:str}/{resource_id:str}")
    async def read(self, state: State, resource_type: FromPath[str], resource_id: FromPath[str]) -> Response:
        return fhir_response(await service.read(state.db, _resource_type(resource_type), resource_id))

    @route(
        ["/", "/metadata", "/{resource_type:str}", "/{resource_type:str}/{resource_id:str}"],
        http_method=["POST", "PUT", "PATCH", "DELETE"],
        sync_to_thread=False,
    )
    def write(self) -> None:
        raise MethodNotAllowedException("this FHIR server is read-only: read and search only")


def fhir_router() -> Router:
    """The /fhir routes (a new router for each app)."""
    return Router(
        path="/fhir",
        route_handlers=[FhirController],
        include_in_schema=False,
        exception_handlers=OUTCOME_HANDLERS,  # type: ignore[arg-type]
    )
