"""What the harnesses that run real Debian programs share (the Patroni cluster of
`tests/components/ha_cluster.py`, the Redis one of `tests/components/config/redis_ha_cluster.py`):
finding a program, free ports, and a module's cluster started and stopped. (Stopping one
process is `stop_process` in `tests/components/config/stubs.py`.)

These tests run the real programs: a missing one fails the test, naming its package; never a skip.
"""

from __future__ import annotations

import shutil
import socket
from contextlib import contextmanager
from typing import Callable, Iterator, Protocol, TypeVar

import pytest

# The Debian package of each program whose name is not its package's.
PACKAGES = {"etcd": "etcd-server", "patronictl": "patroni", "setpriv": "util-linux", "psql": "postgresql-client"}


class Missing(RuntimeError):
    """A Debian program is not installed; the message names the package."""


def binary(name: str) -> str:
    # Daemons (haproxy) live in /usr/sbin, which a non-root PATH may lack.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise Missing(f"`{name}` not found: run `apt-get install -y {PACKAGES.get(name, name)}` (Debian). "
                      "These tests run the real program and do not skip.")
    return path


def free_ports(count: int) -> list[int]:
    """`count` distinct 127.0.0.1 ports free right now: all held at once, so none is handed out twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Harness(Protocol):
    """`stop()` must end every process and remove the harness's files, also after a failed `start()`."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


H = TypeVar("H", bound=Harness)


@contextmanager
def started(create: Callable[[], H]) -> Iterator[H]:
    """The harness `create` builds, started, and stopped even when starting it or a test fails."""
    try:
        harness = create()
    except Missing as missing:
        pytest.fail(str(missing))
    try:
        harness.start()
        yield harness
    finally:
        harness.stop()
