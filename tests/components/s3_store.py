"""An S3-compatible object store on 127.0.0.1 for tests: moto's server (PyPI `moto[server]`),
which speaks the S3 REST API restic and pgBackRest use (signed requests, multipart, ListObjectsV2,
multi-object delete). pgBackRest talks S3 only over TLS: `tls=True` puts Debian's HAProxy in
front with a throwaway self-signed certificate (clients must not verify it). Not moto's own
`--ssl`: its development server ends TLS responses without framing pgBackRest accepts
("unexpected eof"). restic takes plain HTTP.

Keys are not checked by moto: tests here prove the clients find the bucket with the rendered
settings and keys from their environment, not the store's access control.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.components.config.stubs import stop_process
from tests.support import free_port

ACCESS_KEY = "ceres-test-access-key"
SECRET_KEY = "ceres-test-secret-key"
REGION = "us-east-1"
STARTUP_SECONDS = 30


@dataclass(frozen=True)
class S3Store:
    host: str
    port: int
    tls: bool
    bucket: str

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


def _moto_server() -> str:
    program = Path(sys.executable).with_name("moto_server")
    if not program.exists() and not shutil.which("moto_server"):
        pytest.fail("moto_server not found: pip install 'moto[server]' (the test extra installs it; these tests do not skip)")
    return str(program) if program.exists() else shutil.which("moto_server")


def _request(url: str, method: str = "GET") -> int:
    context = ssl._create_unverified_context()  # the server's certificate is self-signed
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5, context=context) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@contextmanager
def _tls_terminator(backend_port: int) -> Iterator[int]:
    """HAProxy on a free port: TLS with a self-signed certificate, forwarding to the plain server."""
    for program, package in (("haproxy", "haproxy"), ("openssl", "openssl")):
        if not shutil.which(program):
            pytest.fail(f"`{program}` not found: apt-get install -y {package} (these tests run it and do not skip)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ceres-s3-") as folder:
        pem, config = Path(folder) / "store.pem", Path(folder) / "haproxy.cfg"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-keyout", str(pem), "-out", str(pem)], check=True, capture_output=True, timeout=60)
        config.write_text("\n".join([
            "defaults", "  mode http", "  timeout connect 5s", "  timeout client 120s", "  timeout server 120s",
            "frontend s3", f"  bind 127.0.0.1:{port} ssl crt {pem}", "  default_backend store",
            "backend store", f"  server store 127.0.0.1:{backend_port}", ""]))
        process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            yield port
        finally:
            stop_process(process, timeout=10)


@contextmanager
def s3_store(*, tls: bool, bucket: str = "ceres-backups") -> Iterator[S3Store]:
    """A running store with `bucket` made; stopped on exit."""
    with _plain_store() as plain_port:
        if not tls:
            yield _made(S3Store("127.0.0.1", plain_port, False, bucket))
            return
        with _tls_terminator(plain_port) as tls_port:
            yield _made(S3Store("127.0.0.1", tls_port, True, bucket))


def _made(store: S3Store) -> S3Store:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            # moto's server accepts unsigned requests: the bucket is made with a plain PUT.
            if _request(f"{store.url}/{store.bucket}", "PUT") == 200:
                return store
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the S3 store at {store.url} did not answer within {STARTUP_SECONDS}s")
        time.sleep(0.2)


@contextmanager
def _plain_store() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([_moto_server(), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"})
    try:
        if process.poll() is not None:
            pytest.fail("moto_server exited at once")
        yield port
    finally:
        stop_process(process, timeout=10)
