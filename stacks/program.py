"""The Pulumi program: read the stack's config, validate it, build the graph, name the outputs.

`__main__.py` runs this under the Pulumi engine; `ceres plan` runs the same function offline.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from stacks.load import load_spec
from stacks.platform import build_platform


def stack_config() -> tuple[dict[str, Any], set[str]]:
    """All config of the running stack and which keys are secret (from the engine or from mocks)."""
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = {key for key in raw if runtime_config.is_config_secret(key)}
    secret |= set(runtime_config.get_config_secret_keys_env())
    return raw, secret


def run() -> dict[str, Any]:
    """Build the stack; return its outputs. Raises ConfigError before registering anything."""
    raw, secret_keys = stack_config()
    spec = load_spec(pulumi.get_stack(), raw, secret_keys)
    smtp_password = pulumi.Config("ceres").get_secret("smtp_password")
    return build_platform(spec, smtp_password).outputs()
