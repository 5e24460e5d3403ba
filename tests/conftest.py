"""Shared fixtures: the real program evaluated under the recording mock engine."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from cli.offline import OfflineRun, run_offline, stack_file_config


def stack_config(stack: str, **settings: Any) -> tuple[dict[str, str], list[str]]:
    """The stack file's config with `ceres:<key>` settings replaced, as the engine would pass them."""
    config, secret_keys = stack_file_config(stack)
    for key, value in settings.items():
        config[f"ceres:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return config, secret_keys


@pytest.fixture
def offline() -> Callable[..., OfflineRun]:
    """Run a stack offline: `offline("dev", services={"gitea": {"enabled": False}})`.

    Each call gets a fresh recording monitor, so nothing leaks between runs or tests.
    """

    def run(stack: str = "dev", secret_keys: tuple[str, ...] = (), **settings: Any) -> OfflineRun:
        config, secrets = stack_config(stack, **settings)
        return run_offline(stack, config, [*secrets, *secret_keys])

    return run
