"""Caddy under the recording engine: the only published ports, one route edge per app, its
Caddyfile, and the admin UIs routed only behind the sso-proxy gate.

The Caddyfile Caddy is given is also checked by the real `caddy validate` (see
tests/components/config/test_caddy.py for which binary).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from types import SimpleNamespace

from components.base import Service
from components.config.caddy import HEALTH_PATH, HEALTH_PORT, NEXTCLOUD_DAV_REDIRECTS, UPTIME_KUMA_PUBLIC_PATHS
from components.integrations.route import RouteEdge
from components.services.alertmanager import Alertmanager
from components.services.caddy import CADDYFILE, HEALTHCHECK, Caddy
from components.services.keycloak import Keycloak
from components.services.oauth2_proxy import OAuth2Proxy
from components.services.portainer import Portainer
from components.services.prometheus import Prometheus
from components.services.uptime_kuma import UptimeKuma
from stacks.tiers import BASE
from tests.components.config.test_caddy import caddy_binary, caddy_env
from tests.support import assert_no_plain_secrets, by_name, of_type, run_components


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


def build_gated(stack: str = "dev"):
    """Caddy in front of a plain app and the three admin UIs, behind oauth2-proxy."""
    built: dict = {}

    def program(spec, host):
        keycloak = Keycloak(spec, host, postgres=None)
        alertmanager = Alertmanager(spec, host)
        uis = [Prometheus(spec, host, alertmanager=alertmanager), alertmanager, UptimeKuma(spec, host)]
        built["proxy"] = OAuth2Proxy(spec, host, keycloak=keycloak)
        built["caddy"] = Caddy(spec, host, routes=[keycloak, PublicApp(spec, "gitea", 3000), *uis], gate=built["proxy"])

    return run_components(program, stack=stack), built["caddy"]


@pytest.fixture(scope="module")
def dev():
    return build()


@pytest.fixture(scope="module")
def gated():
    return build_gated()


@pytest.fixture(scope="module")
def gated_prod():
    return build_gated("prod")


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
    assert_no_plain_secrets(run)


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


# --- the admin UIs behind the SSO gate ---------------------------------------------------------


GATED_SITES = {
    "route-prometheus": ("prometheus.ceres.localhost", "prometheus:9090"),
    "route-alertmanager": ("alertmanager.ceres.localhost", "alertmanager:9093"),
    "route-uptime-kuma": ("status.ceres.localhost", "uptime-kuma:3001"),
}


def site_block(text: str, host: str) -> str:
    return text.split(f"\n{host} {{\n", 1)[1].split("\n}\n", 1)[0]


def test_without_a_gate_no_route_to_a_gated_ui_exists(dev) -> None:
    run, caddy = dev
    assert caddy.forward_auth is None
    names = {r.name for r in of_type(run, "ceres:integrations:")}
    assert not names & {*GATED_SITES, "sso-proxy"}


def test_each_gated_ui_has_its_route_edge_only_with_the_gate(gated) -> None:
    run, caddy = gated
    parent = by_name(run, "caddy", "Caddy").urn
    edges = {r.name: r for r in of_type(run, "ceres:integrations:RouteEdge")}
    assert set(edges) == {"route-keycloak", "route-gitea", *GATED_SITES}
    assert all(edge.parent == parent for edge in edges.values())
    routes = {route.edge.id: route for route in caddy.routes}
    for edge_id, (host, upstream) in GATED_SITES.items():
        assert (routes[edge_id].site_host, routes[edge_id].upstream) == (host, upstream)
        assert routes[edge_id].gate is caddy.forward_auth
    assert routes["route-gitea"].gate is None and routes["route-keycloak"].gate is None


def test_the_sso_proxy_edge_lives_under_caddy_and_gates_exactly_the_routed_uis(gated) -> None:
    run, caddy = gated
    edge = by_name(run, "sso-proxy", "ceres:integrations:ForwardAuthEdge")
    assert edge.parent == by_name(run, "caddy", "Caddy").urn
    assert (edge.inputs["source"], edge.inputs["target"]) == ("caddy", "oauth2_proxy")
    assert caddy.forward_auth in caddy.edges
    assert caddy.forward_auth.hosts == tuple(host for host, _ in GATED_SITES.values())
    assert caddy.forward_auth.upstream == "oauth2-proxy:4180"


def test_with_gated_uis_caddy_also_joins_the_monitoring_network(gated) -> None:
    run, _ = gated
    assert [n["name"] for n in container(run).inputs["networksAdvanced"]] == ["ceres-dev-edge", "ceres-dev-monitoring"]


def test_the_caddyfile_puts_forward_auth_in_front_of_every_gated_ui_only(gated) -> None:
    run, _ = gated
    text = uploaded_caddyfile(run)
    for host, upstream in GATED_SITES.values():
        block = site_block(text, host)
        assert "request_header -X-Auth-Request-*" in block
        assert "handle /oauth2/* {\n\t\treverse_proxy oauth2-proxy:4180 {" in block
        assert "forward_auth oauth2-proxy:4180 {\n\t\t\turi /oauth2/auth" in block
        assert "redir * /oauth2/sign_in?rd={scheme}://{hostport}{uri} 302" in block
        assert f"\t\treverse_proxy {upstream}\n\t}}" in block
        assert ("@public path " + " ".join(UPTIME_KUMA_PUBLIC_PATHS) in block) == host.startswith("status.")
    for plain in ("gitea.ceres.localhost", "keycloak.ceres.localhost"):
        assert "oauth2" not in site_block(text, plain) and "forward_auth" not in site_block(text, plain)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_gated_caddyfile_passes_caddy_validate(stack: str, gated, gated_prod, tmp_path: Path) -> None:
    run, _ = {"dev": gated, "prod": gated_prod}[stack]
    path = tmp_path / "Caddyfile"
    path.write_text(uploaded_caddyfile(run))
    result = subprocess.run([caddy_binary(), "validate", "--config", str(path), "--adapter", "caddyfile"],
                            capture_output=True, text=True, timeout=60, env=caddy_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"level":"warn"' not in result.stderr, result.stderr


def test_the_gated_run_keeps_secrets_out_of_plain_inputs(gated) -> None:
    run, _ = gated
    assert_no_plain_secrets(run)


def test_fails_on_a_gate_with_nothing_to_gate() -> None:
    def program(spec, host):
        proxy = OAuth2Proxy(spec, host, keycloak=Keycloak(spec, host, postgres=None))
        Caddy(spec, host, routes=[PublicApp(spec, "gitea", 3000)], gate=proxy)

    with pytest.raises(Exception, match="no UI to gate"):
        run_components(program)


def test_a_route_fails_on_a_gate_that_does_not_cover_its_host(gated) -> None:
    _, caddy = gated
    outsider = SimpleNamespace(service="prometheus", url="https://metrics.ceres.localhost", upstream="prometheus:9090")
    with pytest.raises(ValueError, match="does not cover metrics.ceres.localhost"):
        RouteEdge(caddy, outsider, gate=caddy.forward_auth)
