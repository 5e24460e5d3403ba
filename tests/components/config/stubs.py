"""Stand-ins for the programs a rendered config script calls, for config tests that run it for real.

Each helper puts executables in `<root>/bin`; tests run the script with that folder first on PATH
(`path_with(root)`), so the script finds the stub (or the recording wrapper) before anything else.
Also here: a base for stub JSON/GraphQL APIs (served with `tests.support.serve`) and a bounded stop
for the real programs a test starts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest


def bin_dir(root: Path) -> Path:
    """`<root>/bin`, made if it is not there yet (a test may put several stubs in it)."""
    folder = root / "bin"
    folder.mkdir(exist_ok=True)
    return folder


def path_with(root: Path) -> str:
    """PATH for a stubbed run: the stubs first, then only the system's own programs."""
    return f"{root / 'bin'}:/usr/bin:/bin"


def executable(path: Path, text: str) -> Path:
    """Write `text` to `path` and make it executable."""
    path.write_text(text)
    path.chmod(0o755)
    return path


def python_stub(root: Path, name: str, source: str) -> Path:
    """A program `name` in `<root>/bin` that is `source` run by this interpreter (so a stub needs
    nothing but the Python the tests run on)."""
    return executable(bin_dir(root) / name, f"#!{sys.executable}\n{source}")


def require(program: str, install: str) -> str:
    """The path of `program` on PATH; fails the test (not skips it) with how to install it, since a
    missing tool would otherwise hide the case the test exists for."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"`{program}` is not installed: {install}")
    return path


def recording_wrapper(root: Path, program: str, install: str) -> Path:
    """A `program` in `<root>/bin` that appends its command line to `<root>/<program>-argv.log`,
    then runs the real one: the test sees how the script called it, the program still runs."""
    real = require(program, install)
    executable(bin_dir(root) / program,
               f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{root}/{program}-argv.log"\nexec {real} "$@"\n')
    return root


def with_overrides(env: dict[str, str], overrides: dict[str, str | None]) -> dict[str, str]:
    """`env` with each override set, or removed where its value is None (a variable left unset)."""
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """Stop a program a test started (a real server or a stub one): terminate it, and kill it if it
    has not exited within `timeout`, so teardown never hangs on it. Nothing to do if it never
    started or has exited."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


class JsonApiHandler(BaseHTTPRequestHandler):
    """Base for a stub HTTP API (serve it with `tests.support.serve`): JSON in and out, and quiet,
    so the request log does not bury a failing test's output."""

    def log_message(self, *args: Any) -> None:
        pass

    def answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def json_body(self) -> Any:
        """The request's JSON body; {} when it has none."""
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

    def bearer(self) -> str | None:
        """The token of an `Authorization: Bearer <token>` header, if there is one."""
        header = self.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None


def execute_graphql(schema: Any, body: dict, root: Any) -> tuple[int, dict]:
    """Answer a GraphQL request as a server would: 400 with the errors if the query does not fit
    `schema`, otherwise 200 with the data (and any resolver errors) from executing it on `root`."""
    from graphql import graphql_sync, parse, validate

    errors = validate(schema, parse(body["query"]))
    if errors:
        return 400, {"errors": [e.formatted for e in errors]}
    result = graphql_sync(schema, body["query"], root_value=root, variable_values=body.get("variables"))
    reply: dict[str, Any] = {"data": result.data}
    if result.errors:
        reply["errors"] = [e.formatted for e in result.errors]
    return 200, reply


# `bundle exec rails runner -` as Redmine's settings steps call it: runs the script on stdin with
# Debian's real Ruby, after $STUB_RAILS (a test's stand-in for the Rails app) is loaded.
RAILS_RUNNER_BUNDLE = """#!/bin/sh
printf '%s\\n' "$*" >> "$STUB_LOG"
[ "$*" = "exec rails runner -" ] || { echo "stub bundle: unexpected $*" >&2; exit 97; }
[ -z "${RAILS_LOG_TO_STDOUT:-}" ] || { echo "stub bundle: RAILS_LOG_TO_STDOUT is still set" >&2; exit 98; }
exec ruby -r "$STUB_RAILS" -
"""
