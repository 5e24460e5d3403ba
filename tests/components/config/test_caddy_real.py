"""A real Caddy running our rendered Caddyfile, in front of a small local upstream.

Caddy listens on free 127.0.0.1 ports (HTTPS with its internal CA, as in dev), proxies
gitea.ceres.localhost to a Python HTTP server that records what it receives, and answers
Nextcloud's DAV redirects itself. curl (`--resolve`, `-k`) plays the browser. Caddy's state
(its CA, certificates) lives under the test's tmp dir; it is stopped in teardown.
"""

from __future__ import annotations

import http.server
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from components.config.caddy import HEALTH_PORT, NEXTCLOUD_DAV_REDIRECTS, CaddySettings, InternalTls, Site, caddyfile
from components.services.caddy import HEALTHCHECK
from tests.components.config.stubs import stop_process
from tests.components.config.test_caddy import caddy_binary, caddy_env
from tests.support import free_port, serving

TIMEOUT = 30
# Large enough for `encode` to compress (Caddy's minimum is 512 bytes).
BODY = ("upstream says hello " * 100).encode()


class RecordingUpstream(http.server.ThreadingHTTPServer):
    """Stands in for an app container: answers 200 and keeps every request's headers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), self.Handler)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.server.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args) -> None:
            pass


@dataclass
class Edge:
    http_port: int
    https_port: int
    health_port: int
    upstream: RecordingUpstream
    log: Path

    def curl(self, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """curl as a browser on the public names would, pinned to 127.0.0.1; prints status and headers."""
        host = url.split("/")[2].split(":")[0]
        resolves = [f"{host}:{port}:127.0.0.1" for port in (self.http_port, self.https_port)]
        argv = ["curl", "-sS", "-k", "-o", "/dev/null", "-D", "-", "--max-time", "10"]
        for resolve in resolves:
            argv += ["--resolve", resolve]
        return subprocess.run([*argv, *extra, url], capture_output=True, text=True, timeout=TIMEOUT)


def status_and_headers(result: subprocess.CompletedProcess[str]) -> tuple[int, dict[str, str]]:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v.strip() for k, v in headers.items()}


def _wait_until_serving(edge: Edge, caddy: subprocess.Popen) -> None:
    """Ready once the health endpoint answers and the internal CA has issued the site's certificate."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if caddy.poll() is not None:
            break
        probe = edge.curl(f"https://gitea.ceres.localhost:{edge.https_port}/")
        if probe.returncode == 0:
            edge.upstream.requests.clear()
            return
        time.sleep(0.3)
    pytest.fail(f"Caddy did not serve within {TIMEOUT}s (exit={caddy.poll()}):\n{edge.log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    home = tmp_path_factory.mktemp("caddy")
    with serving(RecordingUpstream()) as upstream:
        upstream_address = f"127.0.0.1:{upstream.server_address[1]}"
        settings = CaddySettings(
            domain="ceres.localhost",
            tls=InternalTls(),
            sites=(
                Site("gitea.ceres.localhost", upstream_address),
                Site("nextcloud.ceres.localhost", upstream_address, NEXTCLOUD_DAV_REDIRECTS),
            ),
            http_port=free_port(),
            https_port=free_port(),
            health_port=free_port(),
            admin=f"127.0.0.1:{free_port()}",
        )
        config = home / "Caddyfile"
        config.write_text(caddyfile(settings))
        edge = Edge(settings.http_port, settings.https_port, settings.health_port, upstream, home / "caddy.log")
        caddy: subprocess.Popen | None = None
        with open(edge.log, "wb") as log:
            try:
                caddy = subprocess.Popen([caddy_binary(), "run", "--config", str(config), "--adapter", "caddyfile"],
                                         env=caddy_env(home), cwd=home, stdout=log, stderr=subprocess.STDOUT)
                _wait_until_serving(edge, caddy)
                yield edge
            finally:
                stop_process(caddy, TIMEOUT)


def test_https_request_reaches_the_upstream_with_forwarded_headers(edge: Edge) -> None:
    status, headers = status_and_headers(edge.curl(f"https://gitea.ceres.localhost:{edge.https_port}/repo?x=1"))
    assert status == 200
    seen = edge.upstream.requests[-1]
    assert seen["path"] == "/repo?x=1"
    assert seen["host"] == f"gitea.ceres.localhost:{edge.https_port}"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == f"gitea.ceres.localhost:{edge.https_port}"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "server" not in headers
    assert headers["x-content-type-options"] == "nosniff"


def test_client_supplied_forwarded_headers_are_not_trusted(edge: Edge) -> None:
    status, _ = status_and_headers(edge.curl(
        f"https://gitea.ceres.localhost:{edge.https_port}/",
        "-H", "X-Forwarded-Proto: http", "-H", "X-Forwarded-For: 203.0.113.9", "-H", "X-Forwarded-Host: evil.example",
    ))
    assert status == 200
    seen = edge.upstream.requests[-1]
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == f"gitea.ceres.localhost:{edge.https_port}"


def test_http_redirects_to_https(edge: Edge) -> None:
    status, headers = status_and_headers(edge.curl(f"http://gitea.ceres.localhost:{edge.http_port}/some/page"))
    assert status == 308  # permanent, and the method is kept
    # Caddy names the HTTPS port in the redirect only when the site address names one; in
    # production that port is 443, so this is the complete URL.
    assert headers["location"] == "https://gitea.ceres.localhost/some/page"
    assert not edge.upstream.requests or edge.upstream.requests[-1]["path"] != "/some/page"


@pytest.mark.parametrize("well_known", ["/.well-known/carddav", "/.well-known/caldav"])
def test_nextcloud_dav_discovery_redirects_to_remote_php(edge: Edge, well_known: str) -> None:
    before = len(edge.upstream.requests)
    status, headers = status_and_headers(edge.curl(f"https://nextcloud.ceres.localhost:{edge.https_port}{well_known}"))
    assert status == 301
    assert headers["location"] == "/remote.php/dav/"
    assert len(edge.upstream.requests) == before, "Caddy answers the redirect itself"


def test_responses_are_compressed(edge: Edge) -> None:
    status, headers = status_and_headers(edge.curl(
        f"https://gitea.ceres.localhost:{edge.https_port}/", "-H", "Accept-Encoding: gzip"))
    assert status == 200 and headers["content-encoding"] == "gzip"


def test_health_endpoint_answers_on_loopback(edge: Edge) -> None:
    result = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{edge.health_port}/healthz"],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0 and result.stdout == "OK"


def test_the_containers_healthcheck_command_passes(edge: Edge) -> None:
    # The same argv the container runs (busybox wget there, wget here: same flags), on the test's port.
    argv = [arg.replace(f":{HEALTH_PORT}/", f":{edge.health_port}/") for arg in HEALTHCHECK.test[1:]]
    assert subprocess.run(argv, capture_output=True, timeout=TIMEOUT).returncode == 0


def test_internal_ca_state_stays_under_xdg_data_home(edge: Edge) -> None:
    # The root certificate lives in Caddy's data dir (the /data volume in production).
    roots = list((edge.log.parent / "data" / "caddy" / "pki" / "authorities" / "local").glob("root.crt"))
    assert roots, "Caddy's internal CA root is not under XDG_DATA_HOME"
