"""Keycloak under the recording engine: production mode, its database edge, secrets, healthcheck.

The healthcheck script is also run for real (bash, as in the image) against a local HTTP
server answering 200, then 503, then nothing at all.
"""

from __future__ import annotations

import http.server
import subprocess
from typing import Iterator

import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.config.keycloak import health_probe
from components.services.keycloak import Keycloak

REALM = "ceres"  # the default realm (stacks/tiers.py)
from components.services.postgres import PostgreSQL
from stacks.tiers import BASE
from tests.support import assert_no_plain_secrets, by_name, of_type, run_components, serving


def build(postgres: bool, stack: str = "dev"):
    built: dict[str, Keycloak] = {}

    def program(spec, host):
        db = PostgreSQL(spec.services.postgres, host, ("keycloak",)) if postgres else None
        built["keycloak"] = Keycloak(spec, host, postgres=db)

    return run_components(program, stack=stack), built["keycloak"]


@pytest.fixture(scope="module")
def with_postgres():
    return build(postgres=True)


def container(run):
    return by_name(run, "keycloak", "Container")


def env(run) -> dict[str, str]:
    entries = container(run).inputs["envs"]
    return dict(e.split("=", 1) for e in entries if e != SECRET_MARK)


def test_runs_the_pinned_image_in_production_shape(with_postgres) -> None:
    run, _ = with_postgres
    image = by_name(run, "keycloak-image", "RemoteImage")
    assert image.inputs["name"] == BASE["services"]["keycloak"]["image"]
    kc = container(run)
    assert image.urn in kc.dependencies
    assert kc.inputs["restart"] == "unless-stopped"
    assert kc.inputs["wait"] is True
    assert kc.inputs["memory"] == BASE["services"]["keycloak"]["memory_mb"]
    assert not kc.inputs.get("ports"), "only Caddy publishes ports"
    assert [v["containerPath"] for v in kc.inputs["volumes"]] == ["/opt/keycloak/data"]


def test_starts_in_production_mode_never_start_dev(with_postgres) -> None:
    run, _ = with_postgres
    assert container(run).inputs["command"] == ["start"]


def test_is_configured_for_its_public_url_behind_the_proxy(with_postgres) -> None:
    run, keycloak = with_postgres
    values = env(run)
    assert values["KC_HOSTNAME"] == "https://keycloak.ceres.localhost" == keycloak.url
    assert values["KC_PROXY_HEADERS"] == "xforwarded"
    assert values["KC_HTTP_ENABLED"] == "true"
    assert values["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"
    assert values["KC_HEALTH_ENABLED"] == values["KC_METRICS_ENABLED"] == "true"
    assert not any(key.startswith("KEYCLOAK_ADMIN") or key == "KC_PROXY" for key in values), "removed in 26"


def test_uses_its_own_postgres_database_through_the_db_edge(with_postgres) -> None:
    run, _ = with_postgres
    values = env(run)
    assert values["KC_DB"] == "postgres"
    assert values["KC_DB_URL"] == "jdbc:postgresql://postgres:5432/keycloak"
    assert values["KC_DB_USERNAME"] == "keycloak"
    assert "KC_DB_PASSWORD" not in values and container(run).inputs["envs"].count(SECRET_MARK) == 2
    edge = by_name(run, "db-keycloak", "DatabaseEdge")
    assert edge.parent == by_name(run, "keycloak", "Keycloak").urn
    provisioning = by_name(run, "postgres-keycloak-database", "Command")
    assert provisioning.urn in container(run).dependencies, "Keycloak starts once its database exists"
    networks = [n["name"] for n in container(run).inputs["networksAdvanced"]]
    assert networks == ["ceres-dev-edge", "ceres-dev-data"]


def test_without_postgres_falls_back_to_the_embedded_dev_file_database() -> None:
    run, _ = build(postgres=False)
    values = env(run)
    assert values["KC_DB"] == "dev-file"
    assert not any(key.startswith("KC_DB_") for key in values)
    assert not of_type(run, "DatabaseEdge")
    assert [n["name"] for n in container(run).inputs["networksAdvanced"]] == ["ceres-dev-edge"]


def test_admin_is_bootstrapped_with_a_generated_secret_password(with_postgres) -> None:
    run, keycloak = with_postgres
    values = env(run)
    assert values["KC_BOOTSTRAP_ADMIN_USERNAME"] == keycloak.admin_username == "admin"
    assert "KC_BOOTSTRAP_ADMIN_PASSWORD" not in values, "the password reaches the container only as a secret"
    assert by_name(run, "keycloak-admin-password", "RandomPassword").inputs["length"] == 32
    assert _sync_await(keycloak.admin_password.is_secret())
    assert_no_plain_secrets(run)


def test_exposes_urls_for_the_proxy_and_the_back_channel(with_postgres) -> None:
    _, keycloak = with_postgres
    assert keycloak.upstream == "keycloak:8080"
    assert keycloak.internal_url == "http://keycloak:8080"
    assert keycloak.issuer_url == f"https://keycloak.ceres.localhost/realms/{REALM}"
    assert keycloak.internal_realm_url == f"http://keycloak:8080/realms/{REALM}"


def test_prod_uses_the_prod_domain() -> None:
    run, keycloak = build(postgres=True, stack="prod")
    assert env(run)["KC_HOSTNAME"] == "https://keycloak.ceres.example.com" == keycloak.url


def test_healthcheck_probes_the_management_port_with_bash(with_postgres) -> None:
    run, _ = with_postgres
    check = container(run).inputs["healthcheck"]
    assert check["tests"] == ["CMD", "bash", "-c", health_probe(9000)]
    assert check["startPeriod"] == "180s"
    assert "9000" in check["tests"][-1] and "/health/ready" in check["tests"][-1]


# --- the probe script, run for real -------------------------------------------------------------


class StatusServer(http.server.ThreadingHTTPServer):
    """Answers /health/ready with whatever `status` is set to, on 127.0.0.1."""

    status = 200

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), self.Handler)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            ok = self.path == "/health/ready"
            self.send_response(self.server.status if ok else 404)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b'{"status": "UP"}' if ok else b"")

        def log_message(self, *args) -> None:
            pass


@pytest.fixture
def health_server() -> Iterator[StatusServer]:
    with serving(StatusServer()) as server:
        yield server


def probe(port: int) -> int:
    return subprocess.run(["bash", "-c", health_probe(port)], capture_output=True, timeout=15).returncode


def test_probe_passes_only_on_200(health_server: StatusServer) -> None:
    port = health_server.server_address[1]
    assert probe(port) == 0
    health_server.status = 503
    assert probe(port) != 0


def test_probe_fails_when_nothing_listens(health_server: StatusServer) -> None:
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()
    assert probe(port) != 0


def test_probe_refuses_unsafe_input() -> None:
    with pytest.raises(ValueError):
        health_probe(0)
    with pytest.raises(ValueError):
        health_probe(9000, "/health'; rm -rf /")
