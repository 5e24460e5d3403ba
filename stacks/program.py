"""The Pulumi program: read the stack's config, validate it, build the graph, name the outputs.

`__main__.py` runs this under the Pulumi engine; `ceres plan` runs the same function offline.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.object_store import ObjectStoreKeys
from stacks.load import load_spec
from stacks.platform import Platform, build_platform


def stack_config() -> tuple[dict[str, Any], set[str]]:
    """All config of the running stack and which keys are secret (from the engine or from mocks)."""
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = {key for key in raw if runtime_config.is_config_secret(key)}
    secret |= set(runtime_config.get_config_secret_keys_env())
    return raw, secret


def build() -> Platform:
    """Build the stack from the running stack's config. Raises ConfigError before registering anything."""
    raw, secret_keys = stack_config()
    spec = load_spec(pulumi.get_stack(), raw, secret_keys)
    config = pulumi.Config("ceres")
    access_key, secret_key = config.get_secret("backup_s3_access_key"), config.get_secret("backup_s3_secret_key")
    store_keys = ObjectStoreKeys(access_key, secret_key) if access_key is not None and secret_key is not None else None
    return build_platform(spec, config.get_secret("smtp_password"), store_keys)


def run() -> dict[str, Any]:
    """Build the stack; return its outputs."""
    return build().outputs()
