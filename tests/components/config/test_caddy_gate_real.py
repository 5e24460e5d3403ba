"""A real Caddy running our rendered Caddyfile with gated sites, in front of a stand-in oauth2-proxy.

Caddy listens on free 127.0.0.1 ports (HTTPS with its internal CA, as in dev). The stand-in
answers `/oauth2/auth` as oauth2-proxy does with --set-xauthrequest: 401 without a session
cookie, 202 with `X-Auth-Request-{User,Email,Groups}` with one (no Preferred-Username: the
case where Caddy 2.10's copy_headers would keep a client's own header), 403 for a signed-in user
the gate refuses. It answers its `/oauth2/sign_in` and `/oauth2/callback` recognisably. One
recording upstream stands in for Prometheus, Uptime Kuma and Gitea (told apart by Host).
curl (`--resolve`, `-k`) plays the browser. Everything is stopped in teardown.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from components.config.caddy import (
    IDENTITY_HEADERS,
    UPTIME_KUMA_PUBLIC_PATHS,
    CaddySettings,
    Gate,
    InternalTls,
    Site,
    caddyfile,
)
from tests.components.config.stubs import stop_process
from tests.components.config.test_caddy import caddy_binary, caddy_env
from tests.components.config.test_caddy_real import TIMEOUT, RecordingUpstream
from tests.support import free_port, serving

COOKIE = "_oauth2_proxy"
ADMIN = {"X-Auth-Request-User": "ada", "X-Auth-Request-Email": "ada@example.com", "X-Auth-Request-Groups": "ceres-admins"}
SESSIONS = {"valid-admin-session": ADMIN}
REFUSED_SESSION = "valid-session-outside-the-admin-group"
PROMETHEUS, STATUS, GITEA = "prometheus.ceres.localhost", "status.ceres.localhost", "gitea.ceres.localhost"


class StubOAuth2Proxy(RecordingUpstream):
    """Stands in for oauth2-proxy behind Caddy: keeps every request it gets in `requests`, as the
    upstream does, but answers as oauth2-proxy would."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.server.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            path = self.path.split("?", 1)[0]
            if path == "/oauth2/auth":
                self._auth()
            elif path in ("/oauth2/sign_in", "/oauth2/callback"):
                self._answer(200, f"stub oauth2-proxy: {path}".encode())
            else:
                self._answer(404, b"stub oauth2-proxy: not found")

        def _auth(self) -> None:
            cookies = dict(part.strip().split("=", 1) for part in self.headers.get("Cookie", "").split(";") if "=" in part)
            session = cookies.get(COOKIE)
            if session in SESSIONS:
                self._answer(202, b"", SESSIONS[session])
            elif session == REFUSED_SESSION:
                self._answer(403, b"stub oauth2-proxy: forbidden")
            else:
                self._answer(401, b"stub oauth2-proxy: unauthorized")

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class Gateway:
    https_port: int
    http_port: int
    upstream: RecordingUpstream
    gate: StubOAuth2Proxy
    log: Path

    def get(self, host: str, path: str, *extra: str) -> Response:
        """GET https://<host>:<port><path> as a browser would, pinned to 127.0.0.1 (no redirects followed)."""
        url = f"https://{host}:{self.https_port}{path}"
        argv = ["curl", "-sS", "-k", "-D", "-", "--max-time", "10", "--resolve", f"{host}:{self.https_port}:127.0.0.1"]
        result = subprocess.run([*argv, *extra, url], capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
        head, _, body = result.stdout.partition("\n\n")  # text mode turned CRLF into LF
        lines = head.splitlines()
        headers = {k.lower(): v.strip() for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
        return Response(int(lines[0].split()[1]), headers, body)

    def signed_in(self, session: str = "valid-admin-session") -> tuple[str, str]:
        return ("-H", f"Cookie: {COOKIE}={session}")

    def reached(self, host: str, path: str) -> list[dict[str, str]]:
        """What the app upstream received for `host` and `path`."""
        return [r for r in self.upstream.requests if r["host"].startswith(f"{host}:") and r["path"] == path]


def _settings(upstream: str, gate: str, **ports: int | str) -> CaddySettings:
    return CaddySettings(
        domain="ceres.localhost",
        tls=InternalTls(),
        sites=(
            Site(PROMETHEUS, upstream, gate=Gate(gate)),
            Site(STATUS, upstream, gate=Gate(gate, UPTIME_KUMA_PUBLIC_PATHS)),
            Site(GITEA, upstream),
        ),
        **ports,
    )


def _wait_until_serving(gateway: Gateway, caddy: subprocess.Popen) -> None:
    """Ready once every site answers over TLS (the internal CA has issued all three certificates)."""
    deadline = time.monotonic() + TIMEOUT
    pending = [PROMETHEUS, STATUS, GITEA]
    while pending and time.monotonic() < deadline and caddy.poll() is None:
        host = pending[0]
        probe = subprocess.run(
            ["curl", "-sS", "-k", "-o", "/dev/null", "--max-time", "5", "--resolve", f"{host}:{gateway.https_port}:127.0.0.1",
             f"https://{host}:{gateway.https_port}/"],
            capture_output=True, timeout=TIMEOUT,
        )
        if probe.returncode == 0:
            pending.pop(0)
        else:
            time.sleep(0.3)
    if pending:
        pytest.fail(f"Caddy did not serve {pending} within {TIMEOUT}s (exit={caddy.poll()}):\n{gateway.log.read_text()[-4000:]}")
    gateway.upstream.requests.clear()
    gateway.gate.requests.clear()


def _address(server: http.server.ThreadingHTTPServer) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


@contextmanager
def _running(home: Path, as_json: Callable[[dict], dict] | None = None) -> Iterator[Gateway]:
    """Caddy with our Caddyfile (or, with `as_json`, with its adapted JSON changed by it) in
    front of a fresh upstream and stand-in gate; all three stopped on the way out."""
    with serving(RecordingUpstream()) as upstream, serving(StubOAuth2Proxy()) as gate:
        caddy: subprocess.Popen | None = None
        try:
            settings = _settings(
                _address(upstream), _address(gate),
                http_port=free_port(), https_port=free_port(), health_port=free_port(), admin=f"127.0.0.1:{free_port()}",
            )
            config = home / "Caddyfile"
            config.write_text(caddyfile(settings))
            args = ["--config", str(config), "--adapter", "caddyfile"]
            if as_json is not None:
                adapted = subprocess.run([caddy_binary(), "adapt", *args], capture_output=True, text=True,
                                         timeout=TIMEOUT, env=caddy_env(home), cwd=home)
                assert adapted.returncode == 0, adapted.stderr
                (home / "caddy.json").write_text(json.dumps(as_json(json.loads(adapted.stdout))))
                args = ["--config", str(home / "caddy.json")]
            gateway = Gateway(settings.https_port, settings.http_port, upstream, gate, home / "caddy.log")
            with open(gateway.log, "wb") as log:
                caddy = subprocess.Popen([caddy_binary(), "run", *args], env=caddy_env(home), cwd=home,
                                         stdout=log, stderr=subprocess.STDOUT)
            _wait_until_serving(gateway, caddy)
            yield gateway
        finally:
            stop_process(caddy, TIMEOUT)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with _running(tmp_path_factory.mktemp("caddy-gate")) as running:
        yield running


# (a) ------------------------------------------------------------------------------------------


def test_a_signed_out_request_is_sent_to_sign_in_with_its_original_url(gateway: Gateway) -> None:
    response = gateway.get(PROMETHEUS, "/graph?g0.expr=up")
    assert response.status == 302
    original = f"https://{PROMETHEUS}:{gateway.https_port}/graph?g0.expr=up"
    assert response.headers["location"] == f"/oauth2/sign_in?rd={original}"
    assert not gateway.reached(PROMETHEUS, "/graph?g0.expr=up")


def test_the_gate_is_asked_with_what_oauth2_proxy_needs(gateway: Gateway) -> None:
    gateway.get(PROMETHEUS, "/graph", *gateway.signed_in())
    asked = gateway.gate.requests[-1]
    assert asked["path"] == "/oauth2/auth"
    assert asked["x-forwarded-uri"] == "/graph" and asked["x-forwarded-method"] == "GET"
    assert asked["x-forwarded-proto"] == "https"
    assert asked["x-forwarded-host"] == f"{PROMETHEUS}:{gateway.https_port}"
    assert asked["x-real-ip"] == "127.0.0.1"
    assert asked["cookie"] == f"{COOKIE}=valid-admin-session"


# (b) ------------------------------------------------------------------------------------------


def test_a_signed_in_request_reaches_the_app_with_the_identity_headers(gateway: Gateway) -> None:
    response = gateway.get(PROMETHEUS, "/graph", *gateway.signed_in())
    assert response.status == 200
    (seen,) = gateway.reached(PROMETHEUS, "/graph")[-1:]
    assert {name: seen[name.lower()] for name in ADMIN} == ADMIN
    assert seen["x-forwarded-proto"] == "https"


def test_a_refused_user_gets_the_gates_answer_and_never_the_app(gateway: Gateway) -> None:
    response = gateway.get(PROMETHEUS, "/alerts", *gateway.signed_in(REFUSED_SESSION))
    assert response.status == 403 and response.body == "stub oauth2-proxy: forbidden"
    assert not gateway.reached(PROMETHEUS, "/alerts")


# (c) ------------------------------------------------------------------------------------------


def test_a_client_cannot_inject_identity_headers_past_the_gate(gateway: Gateway) -> None:
    forged = ("-H", "X-Auth-Request-User: mallory", "-H", "x-auth-request-preferred-username: root",
              "-H", "X-Auth-Request-Groups: ceres-admins")
    # Signed out: the forged identity does not open the gate.
    assert gateway.get(PROMETHEUS, "/targets", *forged).status == 302
    assert not gateway.reached(PROMETHEUS, "/targets")
    # Signed in: the gate's values win, and a header the gate did not send is not the client's either.
    assert gateway.get(PROMETHEUS, "/targets", *forged, *gateway.signed_in()).status == 200
    (seen,) = gateway.reached(PROMETHEUS, "/targets")
    assert seen["x-auth-request-user"] == "ada" and seen["x-auth-request-groups"] == "ceres-admins"
    assert "x-auth-request-preferred-username" not in seen
    # Forged headers never reach oauth2-proxy either (it reads X-Auth-Request-Redirect).
    assert not any(k.startswith("x-auth-request-") for r in gateway.gate.requests for k in r)


# (d) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/oauth2/sign_in?rd=https://prometheus.ceres.localhost/graph", "/oauth2/callback?code=c&state=s"])
def test_oauth2_paths_go_to_oauth2_proxy_without_the_gate(gateway: Gateway, path: str) -> None:
    before = len(gateway.upstream.requests)
    response = gateway.get(PROMETHEUS, path)
    assert response.status == 200 and response.body == f"stub oauth2-proxy: {path.split('?')[0]}"
    asked = gateway.gate.requests[-1]
    assert asked["path"] == path
    # What oauth2-proxy (--reverse-proxy) builds its redirect URI and cookie domain from.
    assert asked["x-forwarded-host"] == f"{PROMETHEUS}:{gateway.https_port}" and asked["x-forwarded-proto"] == "https"
    assert asked["x-forwarded-uri"] == path and asked["x-real-ip"] == "127.0.0.1"
    assert len(gateway.upstream.requests) == before


# (e) ------------------------------------------------------------------------------------------


def test_a_plain_app_is_not_gated(gateway: Gateway) -> None:
    asked_before = len(gateway.gate.requests)
    assert gateway.get(GITEA, "/explore/repos").status == 200
    assert gateway.reached(GITEA, "/explore/repos")
    assert len(gateway.gate.requests) == asked_before
    # Its /oauth2/ paths are the app's own, not the gate's.
    assert gateway.get(GITEA, "/oauth2/callback").status == 200
    assert gateway.reached(GITEA, "/oauth2/callback") and len(gateway.gate.requests) == asked_before


# Uptime Kuma's status pages ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/status/ceres", "/api/status-page/ceres", "/api/status-page/heartbeat/ceres", "/assets/index.js"])
def test_kumas_status_pages_are_public(gateway: Gateway, path: str) -> None:
    response = gateway.get(STATUS, path, "-H", "X-Auth-Request-User: mallory")
    assert response.status == 200
    (seen,) = gateway.reached(STATUS, path)[-1:]
    assert not [k for k in seen if k.startswith("x-auth-request-")]


@pytest.mark.parametrize("path", ["/dashboard", "/socket.io/?EIO=4&transport=polling", "/metrics", "/statusx"])
def test_the_rest_of_kuma_stays_behind_the_gate(gateway: Gateway, path: str) -> None:
    assert gateway.get(STATUS, path).status == 302
    assert not gateway.reached(STATUS, path)


@pytest.mark.parametrize("path", ["/status/../dashboard", "/status/%2e%2e/dashboard", "/assets/..%2fdashboard"])
def test_dot_segments_do_not_sneak_past_the_gate(gateway: Gateway, path: str) -> None:
    # Caddy's path matcher sees the cleaned path (/dashboard), which is not public.
    assert gateway.get(STATUS, path, "--path-as-is").status == 302
    assert not [r for r in gateway.upstream.requests if "dashboard" in r["path"]]


# The pinned Caddy (2.10) ---------------------------------------------------------------------
# Caddy 2.10's copy_headers sets each header only when the gate sent it and never deletes the
# client's (GHSA-7r4p-vjf4-gxv4; 2.11 adds a delete before each set). No 2.10 binary is
# installable here, so these run the 2.11 binary on our config's adapted JSON with those
# deletes taken out: the 2.10 expansion of the same Caddyfile.


def _without(config: Any, unwanted: Callable[[dict], bool]) -> Any:
    """`config` with every route or handler `unwanted` picks removed, at any depth."""
    if isinstance(config, dict):
        return {key: _without(value, unwanted) for key, value in config.items()}
    if isinstance(config, list):
        return [_without(item, unwanted) for item in config if not (isinstance(item, dict) and unwanted(item))]
    return config


def _copy_headers_delete(item: dict) -> bool:
    """2.11's per-header delete route in forward_auth's 2xx handler (absent in 2.10)."""
    handle = item.get("handle", [])
    return len(handle) == 1 and handle[0].get("handler") == "headers" and \
        handle[0].get("request", {}).get("delete", [""])[0] in IDENTITY_HEADERS


def _site_strip(item: dict) -> bool:
    """Our site-level `request_header -X-Auth-Request-*`."""
    return item.get("handler") == "headers" and item.get("request") == {"delete": ["X-Auth-Request-*"]}


def as_caddy_210(config: dict) -> dict:
    return _without(config, _copy_headers_delete)


def as_caddy_210_without_the_strip(config: dict) -> dict:
    return _without(as_caddy_210(config), _site_strip)


FORGED_PREFERRED = ("-H", "X-Auth-Request-Preferred-Username: root")


@pytest.fixture(scope="module")
def caddy_210(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with _running(tmp_path_factory.mktemp("caddy-210"), as_caddy_210) as running:
        yield running


def test_on_caddy_210_the_site_strip_still_stops_injection(caddy_210: Gateway) -> None:
    assert "delete\": [\"X-Auth-Request-User" not in (caddy_210.log.parent / "caddy.json").read_text()
    assert caddy_210.get(PROMETHEUS, "/rules", *FORGED_PREFERRED, *caddy_210.signed_in()).status == 200
    (seen,) = caddy_210.reached(PROMETHEUS, "/rules")
    assert seen["x-auth-request-user"] == "ada" and "x-auth-request-preferred-username" not in seen


def test_on_caddy_210_without_the_strip_injection_would_pass(tmp_path: Path) -> None:
    # Why the strip is there: the same config without it lets the client's header through.
    with _running(tmp_path, as_caddy_210_without_the_strip) as unprotected:
        assert unprotected.get(PROMETHEUS, "/rules", *FORGED_PREFERRED, *unprotected.signed_in()).status == 200
        (seen,) = unprotected.reached(PROMETHEUS, "/rules")
        assert seen["x-auth-request-preferred-username"] == "root"
