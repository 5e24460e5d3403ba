"""Caddy under the recording engine: the only published ports, one route edge per app, its Caddyfile.

The Caddyfile Caddy is given is also checked by the real `caddy validate` (see
tests/components/config/test_caddy.py for which binary).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from types import SimpleNamespace

from components.base import Service
from components.config.caddy import HEALTH_PATH, HEALTH_PORT, NEXTCLOUD_DAV_REDIRECTS
from components.services.caddy import CADDYFILE, HEALTHCHECK, Caddy
from components.services.keycloak import Keycloak
from components.services.portainer import Portainer
from stacks.tiers import BASE
from tests.components.config.test_caddy import caddy_binary, caddy_env
from tests.support import by_name, of_type, run_components


class PublicApp(Service):
    """A stand-in for an app owned elsewhere: only what Caddy reads (service, url, upstream)."""

    def __init__(self, spec, service: str, port: int):
        super().__init__(service)
        self.url = spec.public_url(service)
        self.HTTP_PORT = port
        self.container = SimpleNamespace(alias=service)
        self.register_outputs({})


def build(stack: str = "dev", with_nextcloud: bool = True):
    built: dict[str, Caddy] = {}

    def program(spec, host):
        routes = [Keycloak(spec, host, postgres=None), Portainer(spec, host), PublicApp(spec, "gitea", 3000)]
        if with_nextcloud:
            routes.append(PublicApp(spec, "nextcloud", 80))
        built["caddy"] = Caddy(spec, host, routes=routes)

    return run_components(program, stack=stack), built["caddy"]


@pytest.fixture(scope="module")
def dev():
    return build()


@pytest.fixture(scope="module")
def prod():
    return build("prod")


def container(run):
    return by_name(run, "caddy", "Container")


def uploaded_caddyfile(run) -> str:
    uploads = container(run).inputs["uploads"]
    assert [u["file"] for u in uploads] == [CADDYFILE]
    return uploads[0]["content"]


def test_runs_the_pinned_image_in_production_shape(dev) -> None:
    run, _ = dev
    image = by_name(run, "caddy-image", "RemoteImage")
    assert image.inputs["name"] == BASE["services"]["caddy"]["image"]
    caddy = container(run)
    assert image.urn in caddy.dependencies
    assert caddy.inputs["restart"] == "unless-stopped" and caddy.inputs["wait"] is True
    assert caddy.inputs["memory"] == BASE["services"]["caddy"]["memory_mb"]
    assert caddy.inputs["healthcheck"]["tests"] == HEALTHCHECK.test
    assert HEALTHCHECK.test == ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{HEALTH_PORT}{HEALTH_PATH}"]


def test_is_the_only_container_publishing_ports_and_only_80_and_443(dev) -> None:
    run, _ = dev
    assert container(run).inputs["ports"] == [{"internal": 80, "external": 80}, {"internal": 443, "external": 443}]
    for other in of_type(run, "docker:index/container:Container"):
        if other.name != "caddy":
            assert not other.inputs.get("ports"), other.name


def test_joins_only_the_edge_network_and_keeps_certificates_in_volumes(dev) -> None:
    run, _ = dev
    caddy = container(run)
    assert [n["name"] for n in caddy.inputs["networksAdvanced"]] == ["ceres-dev-edge"]
    assert {"volumeName": "ceres-dev-caddy-data", "containerPath": "/data"} in caddy.inputs["volumes"]
    assert {"volumeName": "ceres-dev-caddy-config", "containerPath": "/config"} in caddy.inputs["volumes"]


def test_each_routed_app_gets_its_route_edge_under_caddy(dev) -> None:
    run, caddy = dev
    parent = by_name(run, "caddy", "Caddy").urn
    edges = {r.name: r for r in of_type(run, "ceres:integrations:RouteEdge")}
    assert set(edges) == {"route-keycloak", "route-portainer", "route-gitea", "route-nextcloud", "webdav-nextcloud"}
    assert all(edge.parent == parent for edge in edges.values())
    assert edges["route-portainer"].inputs["target"] == "portainer"
    assert {r.edge.id for r in caddy.edges} == set(edges)
    assert {(r.site_host, r.upstream) for r in caddy.routes} == {
        ("keycloak.ceres.localhost", "keycloak:8080"),
        ("portainer.ceres.localhost", "portainer:9000"),
        ("gitea.ceres.localhost", "gitea:3000"),
        ("nextcloud.ceres.localhost", "nextcloud:80"),
    }


def test_caddyfile_routes_every_app_to_its_upstream(dev) -> None:
    run, caddy = dev
    text = uploaded_caddyfile(run)
    for route in caddy.routes:
        block = text.split(f"\n{route.site_host} {{\n", 1)[1].split("\n}\n", 1)[0]
        assert f"reverse_proxy {route.upstream}" in block
        assert "tls internal" in block
        dav = route.target.service == "nextcloud"
        assert all((f"redir {r.path} {r.to} 301" in block) == dav for r in NEXTCLOUD_DAV_REDIRECTS)


def test_without_nextcloud_there_is_no_webdav_edge() -> None:
    run, caddy = build(with_nextcloud=False)
    assert caddy.webdav is None
    assert "webdav-nextcloud" not in {r.name for r in of_type(run, "RouteEdge")}
    assert ".well-known" not in uploaded_caddyfile(run)


def test_prod_gets_acme_with_the_stack_email(prod) -> None:
    run, _ = prod
    text = uploaded_caddyfile(run)
    assert "email ops@example.com" in text
    assert "acme_ca https://acme-v02.api.letsencrypt.org/directory" in text
    assert "tls internal" not in text
    assert "gitea.ceres.example.com {" in text


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_uploaded_caddyfile_passes_caddy_validate(stack: str, dev, prod, tmp_path: Path) -> None:
    run, _ = {"dev": dev, "prod": prod}[stack]
    path = tmp_path / "Caddyfile"
    path.write_text(uploaded_caddyfile(run))
    result = subprocess.run([caddy_binary(), "validate", "--config", str(path), "--adapter", "caddyfile"],
                            capture_output=True, text=True, timeout=60, env=caddy_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_no_generated_secret_appears_in_plain_inputs(dev) -> None:
    run, _ = dev
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), resource.name


def test_fails_on_an_app_that_is_not_public() -> None:
    class Internal(Service):
        def __init__(self):
            super().__init__("postgres")
            self.register_outputs({})

    with pytest.raises(Exception, match="not a public app"):
        run_components(lambda spec, host: Caddy(spec, host, routes=[Internal()]))


def test_fails_on_a_ui_that_needs_the_sso_gate() -> None:
    # Prometheus, Alertmanager and Uptime Kuma have no login: never published ungated.
    with pytest.raises(Exception, match="SSO gate"):
        run_components(lambda spec, host: Caddy(spec, host, routes=[PublicApp(spec, "prometheus", 9090)]))
