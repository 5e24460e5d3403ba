"""What the fake API servers share: injected faults, the contract check, and serving JSON.

Each fake (fake_gitea, fake_mattermost, fake_wikijs) keeps the state and answers of its own
server; this module records, fails, delays and serves them the same way.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Protocol

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from tests.support import serving


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class InjectedFaults:
    """Knobs a test turns: the next requests fail with a status, or answer late."""

    _failures: list[int] = field(default_factory=list)
    _delays: list[float] = field(default_factory=list)
    _fault_lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 503) -> None:
        self._failures.extend([status] * count)

    def delay_next(self, seconds: float, count: int = 1) -> None:
        self._delays.extend([seconds] * count)

    def next_fault(self) -> int | None:
        """Sleep out the next delay, if any; the status the next request must fail with, if any."""
        with self._fault_lock:
            delay = self._delays.pop(0) if self._delays else 0.0
            failure = self._failures.pop(0) if self._failures else None
        if delay:
            time.sleep(delay)
        return failure


def contract_problem(contract: OpenAPI, base_url: str, method: str, path: str, query: dict[str, str],
                     headers: dict[str, str], body: bytes) -> str | None:
    """What the API contract says is wrong with a request (openapi-core), or None."""
    request = MockRequest(base_url, method.lower(), path, args=query,
                          headers={k.title(): v for k, v in headers.items()}, data=body or None,
                          content_type=headers.get("content-type", "application/json").split(";")[0])
    errors = contract.unmarshal_request(request).errors
    if not errors:
        return None
    return "; ".join(f"{type(e).__name__}: {getattr(e, '__cause__', '') or e}" for e in errors)


class JsonApi(Protocol):
    base_url: str

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]: ...


class _Handler(BaseHTTPRequestHandler):
    fake: JsonApi
    timeout = 10  # a stuck client cannot hold a server thread forever

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.fake.handle(self.command, self.path, headers, body)
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the timeout tests) leaves a broken pipe behind: not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serving_fake(fake: JsonApi) -> Iterator[JsonApi]:
    """Serve `fake` on a free 127.0.0.1 port (its `base_url` is set); stopped on the way out,
    even when the test fails."""
    server = _Server(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": fake}))
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    with serving(server):
        yield fake
