"""What the harnesses that run real Debian programs share (the Patroni cluster of
`tests/components/ha_cluster.py`, the Redis one of `tests/components/config/redis_ha_cluster.py`):
finding a program, free ports, and a module's cluster started and stopped. (Stopping one
process is `stop_process` in `tests/components/config/stubs.py`.)

These tests run the real programs: a missing one fails the test, naming its package; never a skip.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Protocol, TypeVar

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


def postgres_bindir(programs: Iterable[str] = ("initdb", "postgres", "pg_ctl", "psql")) -> Path:
    """The newest /usr/lib/postgresql/<major>/bin (Debian keeps the server off PATH) with every one of
    `programs`."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(re.findall(r"/(\d+)/bin", d)[0]), reverse=True)
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, program), os.X_OK) for program in programs):
            return Path(bindir)
    raise Missing(f"PostgreSQL ({', '.join(programs)}) not found under /usr/lib/postgresql/*/bin: "
                  "run `apt-get install -y postgresql` (Debian). These tests run the real program and do not skip.")


def as_postgres(argv: list[str]) -> list[str]:
    """Run as the `postgres` OS user: the server refuses root, and `peer` auth maps OS user to role.
    setpriv execs in place (unlike runuser/su, which fork under PAM), so a Popen of this is the
    program itself: signals reach it and stopping it in teardown really stops it."""
    return [binary("setpriv"), "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


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
