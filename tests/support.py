"""Helpers shared by the tests: building components under the recording engine and reading the
recorded run, the assertions several services share, and serving stub HTTP servers."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, TypeVar

from cli.offline import OfflineEngine, OfflineRun, Recorded
from components.base import Service
from components.docker_host import DockerHostComponent
from stacks.load import load_spec
from stacks.spec import StackSpec
from tests.conftest import stack_config

T = TypeVar("T")
S = TypeVar("S", bound=socketserver.BaseServer)

# How long teardown waits for a stub server's thread: a hung handler fails the run instead of hanging it.
SERVER_JOIN_SECONDS = 10


def of_type(run: OfflineRun, suffix: str) -> list[Recorded]:
    return [r for r in run.resources if r.type.endswith(suffix)]


def by_name(run: OfflineRun, name: str, suffix: str = "") -> Recorded:
    matches = [r for r in run.resources if r.name == name and r.type.endswith(suffix)]
    assert len(matches) == 1, f"expected one resource {name!r} ({suffix}), found {len(matches)}"
    return matches[0]


def run_components(build: Callable[[StackSpec, DockerHostComponent], Any], stack: str = "dev", **settings: Any) -> OfflineRun:
    """Build only some components (a service and what it needs) on the stack's apps host, under
    the recording engine: `run_components(lambda spec, host: Redis(spec, host))`."""
    config, secret_keys = stack_config(stack, **settings)

    def program() -> dict:
        spec = load_spec(stack, config, set(secret_keys))
        host = DockerHostComponent(spec.host_for("apps"), f"ceres-{stack}")
        build(spec, host)
        return {}

    engine = OfflineEngine(stack, config, secret_keys)
    engine.run(program)
    return OfflineRun(stack, engine.monitor.recorded, {})


def served_without_proxy(*services: Service) -> None:
    """Resolve each service's `reachable_url` as if Caddy served it (its own container stands in),
    for tests that build an app without the proxy but with the API resources that wait for it."""
    for service in services:
        service.served_through(service.container.container)


def build_one(make: Callable[[StackSpec, DockerHostComponent], T], **settings: Any) -> tuple[OfflineRun, T]:
    """`run_components` for a program whose last step makes the component under test; returns the
    run and that component (built inside the engine, so it is fetched out of the program)."""
    made: list[T] = []
    run = run_components(lambda spec, host: made.append(make(spec, host)), **settings)
    return run, made[0]


def build_named(name: str, make: Callable[[StackSpec, DockerHostComponent], Any], **settings: Any) -> tuple[OfflineRun, dict]:
    """`run_components` for a program whose last step makes the component under test; returns the
    run and {"spec": the stack spec it was built from, name: the component}."""
    made: dict[str, Any] = {}

    def program(spec: StackSpec, host: DockerHostComponent) -> None:
        made["spec"], made[name] = spec, make(spec, host)
    return run_components(program, **settings), made


def build_with_sso(name: str, make: Callable[[StackSpec, DockerHostComponent], Any]) -> tuple[OfflineRun, dict]:
    """Keycloak with its realm, the service `make` builds (with `sso=True`), and the OIDC client edge
    between them. Returns the run and {"spec": the stack spec, name: the service}."""
    from components.integrations.oidc import OidcClientEdge
    from components.services.keycloak import Keycloak

    def program(spec: StackSpec, host: DockerHostComponent) -> Any:
        keycloak = Keycloak(spec, host, postgres=None)
        keycloak.open_realm(spec, [])
        service = make(spec, host)
        OidcClientEdge(service, keycloak)
        return service
    return build_named(name, program)


def build_on_postgres_or_sqlite(make: Callable[..., T], consumer: str, with_postgres: bool) -> tuple[OfflineRun, T]:
    """`make(spec, host, postgres=...)` given a PostgreSQL holding `consumer`'s database, or None
    (the service's SQLite fallback), under the recording engine."""
    from components.services.postgres import PostgreSQL

    return build_one(lambda spec, host: make(
        spec, host, postgres=PostgreSQL(spec.services.postgres, host, (consumer,)) if with_postgres else None))


def build_with_stores(make: Callable[..., T], consumer: str, postgres: bool = True, redis: bool = True) -> tuple[OfflineRun, T]:
    """`make(spec, host, postgres=..., redis=...)` given a PostgreSQL and a Redis that serve
    `consumer` (or None for either, for the fallbacks), under the recording engine."""
    from components.services.postgres import PostgreSQL
    from components.services.redis import Redis

    def program(spec: StackSpec, host: DockerHostComponent) -> T:
        db = PostgreSQL(spec.services.postgres, host, (consumer,)) if postgres else None
        cache = Redis(spec.services.redis, host, (consumer,)) if redis else None
        return make(spec, host, postgres=db, redis=cache)
    return build_one(program)


def unwrap(value: Any) -> Any:
    """A recorded state value with its secrets opened (the mock's values, for checking wiring)."""
    if isinstance(value, dict):
        if "value" in value and len(value) == 2:
            return unwrap(value["value"])
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def assert_no_plain_secrets(run: OfflineRun) -> None:
    """No generated secret (the mock's values start `offline-`) shows in any resource's plain inputs."""
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), f"{resource.name} carries a secret in plain text"


def assert_production_shape(run: OfflineRun, service: str, *, image: str, memory: int,
                            networks: list[str] | None = None) -> Recorded:
    """The container every long-running service gets: the pinned image, restarted unless stopped,
    waited for, memory-capped, no published ports (only Caddy publishes), and, when given, exactly
    these networks in this order. Returns the container for the service's own checks."""
    container = by_name(run, service, "Container")
    assert by_name(run, f"{service}-image", "RemoteImage").inputs["name"] == image
    assert container.inputs["restart"] == "unless-stopped" and container.inputs["wait"] is True
    assert container.inputs["memory"] == memory
    assert not container.inputs["ports"], "only Caddy publishes ports"
    if networks is not None:
        assert [n["name"] for n in container.inputs["networksAdvanced"]] == networks
    return container


def free_port() -> int:
    """A 127.0.0.1 port free right now, for a program that must be told its port up front (nothing
    listens on it once this returns, which is also how a test gets a port where nothing answers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_oidc_client(run: OfflineRun, service: str, redirect_uris: list[str]) -> Recorded:
    """The Keycloak client the OIDC edge makes for `service`: its client id is the service's name,
    its secret is generated (secret), and it allows exactly these callback URLs. Returns it."""
    from cli.offline import SECRET_MARK

    client = by_name(run, f"{service}-oidc-client", "Client")
    assert client.inputs["clientId"] == service and client.inputs["clientSecret"] == SECRET_MARK
    assert client.inputs["validRedirectUris"] == redirect_uris
    return client


def assert_probed_through_the_host(container: Recorded, url: str) -> None:
    """A scratch image has no shell or wget: the health check runs the probe busybox the host
    mounts at /ceres-probe, fetching `url`."""
    from components.docker_host import PROBE

    assert container.inputs["healthcheck"]["tests"] == ["CMD", PROBE, "wget", "-q", "-O", "/dev/null", url]
    assert "/ceres-probe" in [v["containerPath"] for v in container.inputs["volumes"]]


def assert_logs_in_as_the_monitor(run: OfflineRun, exporter: str, store: str, first_envs: list[str],
                                  password_variable: str) -> Recorded:
    """An exporter reads its store as `ceres_monitor`: the address and user in plain envs, then the
    password the store generated for that user, as a secret env; no secret anywhere in plain text.
    Returns the exporter's container."""
    from cli.offline import SECRET_MARK

    container = by_name(run, exporter, "Container")
    envs = container.inputs["envs"]
    assert envs[:2] == first_envs
    assert envs[2] == SECRET_MARK
    password = unwrap(by_name(run, f"{store}-ceres_monitor-password", "RandomPassword").state["result"])
    assert unwrap(container.state["envs"])[2] == f"{password_variable}={password}"
    assert_no_plain_secrets(run)
    return container


@contextmanager
def serving(server: S) -> Iterator[S]:
    """Run `server` (already bound, e.g. to 127.0.0.1 port 0) in a daemon thread; on the way out
    always shut it down, close its socket and join the thread, waiting at most SERVER_JOIN_SECONDS.
    Shutting down twice is harmless, so a test may stop the server early."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=SERVER_JOIN_SECONDS)


@contextmanager
def serve(handler_class: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler_class` over HTTP on a free 127.0.0.1 port in a background thread; yields the
    port and stops the server on the way out (see `serving`)."""
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler_class)) as server:
        yield server.server_address[1]
