"""The production-like deployment (compose.yaml), checked without Docker: what an operator relies on."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
from sqlalchemy import make_url

from capacity.cli import serve
from support.compose import runner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return RUN.load_compose(ROOT / "compose.yaml")


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


RUN = runner()
environment, interpolate, startup_command = RUN.environment, RUN.interpolate, RUN.startup_command
SCHEMA = ROOT / "deploy" / "compose-spec" / "compose-spec.json"


def test_compose_yaml_is_valid_by_the_compose_specification_schema(compose: dict) -> None:
    """What `docker compose config` checks first (the plugin is not installed here): the file against the
    Compose Specification's own JSON schema (vendored, deploy/compose-spec/), as written and as interpolated."""
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    secrets = {"POSTGRES_PASSWORD": "pw", "CAPACITY_SECRET_KEY": "k" * 40}

    def interpolated(value: object) -> object:
        if isinstance(value, dict):
            return {key: interpolated(item) for key, item in value.items()}
        if isinstance(value, list):
            return [interpolated(item) for item in value]
        return interpolate(value, secrets) if isinstance(value, str) else value

    for document in (compose, interpolated(compose)):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == []


def test_the_schema_check_catches_what_compose_would_refuse(compose: dict) -> None:
    """The control: the same validator refuses a misspelt key, a map for a list and an unknown condition."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    app = compose["services"]["app"]
    for broken in (
        {**app, "helthcheck": app["healthcheck"]},
        {**app, "expose": {"port": 8000}},
        {**app, "depends_on": {"postgres": {"condition": "service_ready"}}},
    ):
        document = {**compose, "services": {**compose["services"], "app": broken}}
        assert list(validator.iter_errors(document)), broken


def test_the_vendored_schema_says_where_it_comes_from() -> None:
    notice = (SCHEMA.parent / "README.md").read_text()
    assert "https://github.com/compose-spec/compose-spec" in notice and "Apache License, Version 2.0" in notice
    assert "Apache License" in (SCHEMA.parent / "LICENSE").read_text()
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() in notice, "the file is the one the notice names"


def test_the_app_waits_for_healthy_postgres_and_redis(services: dict) -> None:
    depends = services["app"]["depends_on"]
    for name in ("postgres", "redis"):
        assert depends[name]["condition"] == "service_healthy", name
        assert services[name]["healthcheck"]["test"], f"{name} needs a healthcheck to be waited for"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert services["redis"]["image"].startswith("redis:7")


def test_each_replica_migrates_before_it_serves(services: dict) -> None:
    command = startup_command(services["app"])
    # `capacity serve` migrates to head before it serves, and a failed migration stops it: the image runs
    # it alone, so a replica does not migrate twice.
    assert "migrate_to_head(" in inspect.getsource(serve.callback)
    serve_args = shlex.split(command)
    assert serve_args[:2] == ["capacity", "serve"], command
    assert "&&" not in serve_args and "migrate" not in serve_args
    assert serve_args[serve_args.index("--host") + 1] == "0.0.0.0"
    assert "--demo" not in command


def test_two_replicas_of_the_app_behind_the_proxy(services: dict) -> None:
    app = services["app"]
    assert app["deploy"]["replicas"] == 2
    # Replicas cannot share a fixed name or host port; only the proxy is published.
    assert "container_name" not in app and "ports" not in app
    proxy = services["proxy"]
    assert proxy["ports"], "the proxy is the way in"
    assert "app" in proxy["depends_on"]


def test_the_app_points_at_the_postgres_and_redis_services(services: dict) -> None:
    env = environment(services["app"])
    pg = environment(services["postgres"])
    secrets = {"POSTGRES_PASSWORD": "pw", "CAPACITY_SECRET_KEY": "k" * 40}
    db = make_url(interpolate(env["CAPACITY_DATABASE_URL"], secrets))
    assert db.drivername == "postgresql+asyncpg"
    assert db.host == "postgres" and db.host in services
    assert (db.port or 5432) == 5432
    assert db.database == pg["POSTGRES_DB"] and db.username == pg["POSTGRES_USER"]
    assert db.password == interpolate(pg["POSTGRES_PASSWORD"], secrets), "app and database share one password"
    redis = urlsplit(interpolate(env["CAPACITY_REDIS_URL"], secrets))
    assert redis.scheme == "redis" and redis.hostname == "redis" and redis.hostname in services
    assert (redis.port or 6379) == 6379


def test_it_will_not_start_without_a_secret_key(services: dict) -> None:
    env = environment(services["app"])
    assert interpolate(env["CAPACITY_SECRET_KEY"], {"CAPACITY_SECRET_KEY": "abc"}) == "abc"
    with pytest.raises(ValueError, match="CAPACITY_SECRET_KEY"):
        interpolate(env["CAPACITY_SECRET_KEY"], {})
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        interpolate(env["CAPACITY_DATABASE_URL"], {"CAPACITY_SECRET_KEY": "abc"})


def test_the_proxy_forwards_to_the_app_with_websockets_and_the_real_client(services: dict) -> None:
    proxy = services["proxy"]
    mounts = [v.split(":") for v in proxy["volumes"]]
    configs = [ROOT / src for src, *_ in mounts if src.startswith("./deploy/")]
    assert configs and all(path.is_file() for path in configs)
    conf = "\n".join(path.read_text() for path in configs)
    assert re.search(r"server\s+app:8000\b", conf), "the upstream is the app service on the port it serves"
    assert "proxy_pass http://" in conf
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade", conf), "WebSockets (/ws/events) need it"
    # The login throttle counts failures per client: the app must see the real client, and nobody else can
    # tell it a made-up one (the header is replaced, not appended to, and the replicas are not published).
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$remote_addr;", conf)
    assert environment(services["app"]).get("CAPACITY_TRUSTED_PROXIES")


def test_the_image_is_built_from_the_package_with_its_migrations() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    # A non-editable install, pinned by constraints.txt.
    install = re.search(r"^RUN pip install ((?:(?:-c |--constraint[= ])constraints\.txt |-\S+ )*)\.$", dockerfile, re.M)
    assert install and "constraints.txt" in install.group(1)
    copied = " ".join(line for line in dockerfile.splitlines() if line.startswith("COPY "))
    for needed in ("capacity", "pyproject.toml", "constraints.txt"):
        assert needed in copied, needed
    # alembic.ini and the migrations are package data (capacity/), so the installed package migrates as is.
    assert "PYTHONPATH" not in dockerfile
    assert "migrations" not in copied and "alembic.ini" not in copied


def test_the_health_checks_ask_for_readiness_and_the_proxy_waits_for_it(services: dict) -> None:
    check = " ".join(services["app"]["healthcheck"]["test"])
    assert "/health/ready" in check, "ready (database at head, Redis), not merely alive"
    assert "127.0.0.1:8000" in check
    assert services["proxy"]["depends_on"]["app"]["condition"] == "service_healthy"
    from capacity.app import create_app
    from support.settings import settings_for

    paths = {route.path for route in create_app(settings_for("sqlite+aiosqlite:///:memory:")).routes}
    assert {"/health", "/health/ready", "/metrics"} <= paths


def test_the_proxy_passes_over_unready_replicas_and_hides_the_metrics(services: dict) -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"server\s+app:8000\s+resolve\s+max_fails=\d+\s+fail_timeout=\d+s;", conf)
    assert re.search(r"proxy_next_upstream\s+error\s+timeout\s+http_503;", conf)
    assert "non_idempotent" not in conf, "a POST answered 503 is retried by its client, never by the proxy"
    assert re.search(r"location\s+=\s+/metrics\s*\{\s*return\s+404;", conf), "metrics never through the public door"
    assert re.search(r"location\s+=\s+/health/ready\s*\{", conf)


def test_the_pools_of_all_replicas_fit_in_postgres(services: dict) -> None:
    env = environment(services["app"])
    per_replica = int(env["CAPACITY_DB_POOL_SIZE"]) + int(env["CAPACITY_DB_MAX_OVERFLOW"])
    replicas = services["app"]["deploy"]["replicas"]
    # postgres:16's max_connections is 100, with 3 reserved for superusers; keep room for psql and backups.
    assert per_replica * replicas <= 100 - 3 - 10, (per_replica, replicas)
    assert "CAPACITY_METRICS_TOKEN" in env
