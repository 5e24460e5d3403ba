"""A tiny dynamic provider that exists only to prove the plugin-host harness.

It lives in an importable module so dill pickles it by reference and the host (cwd = repo root)
imports it, exactly like the real providers in components/providers/.
"""

from __future__ import annotations

import re
from typing import Any

from pulumi.dynamic import (
    CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult,
)
from pulumi.output import Unknown

NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


class ToyProvider(ResourceProvider):
    """`name` is validated and replaces on change; `note` updates in place; `boom` makes any call raise."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        name = news.get("name")
        failures = []
        # At preview the host hands check/diff a not-yet-known input as a pulumi.output.Unknown.
        if not isinstance(name, Unknown) and not (isinstance(name, str) and NAME.match(name)):
            failures.append(CheckFailure("name", f"name {name!r} must match {NAME.pattern}"))
        return CheckResult(news, failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in ("name", "note", "token") if olds.get(key) != news.get(key)]
        replaces = [key for key in changed if key == "name"]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=bool(replaces))

    def create(self, props: dict[str, Any]) -> CreateResult:
        self._maybe_boom(props)
        # Echo everything, plus what the provider received for `token` (to prove secret delivery).
        return CreateResult(f"toy-{props['name']}", {**props, "token_type": type(props.get("token")).__name__})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if props.get("gone"):
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "read_count": props.get("read_count", 0) + 1})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self._maybe_boom(news)
        return UpdateResult({**news, "previous_note": olds.get("note")})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self._maybe_boom(props)

    @staticmethod
    def _maybe_boom(props: dict[str, Any]) -> None:
        if props.get("boom"):
            raise RuntimeError(f"toy provider refused {props['name']!r}: boom requested")
