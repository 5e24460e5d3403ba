"""Helpers for reading a recorded offline run in tests."""

from __future__ import annotations

from typing import Any, Callable

from cli.offline import OfflineEngine, OfflineRun, Recorded
from components.docker_host import DockerHostComponent
from stacks.load import load_spec
from stacks.spec import StackSpec
from tests.conftest import stack_config


def of_type(run: OfflineRun, suffix: str) -> list[Recorded]:
    return [r for r in run.resources if r.type.endswith(suffix)]


def by_name(run: OfflineRun, name: str, suffix: str = "") -> Recorded:
    matches = [r for r in run.resources if r.name == name and r.type.endswith(suffix)]
    assert len(matches) == 1, f"expected one resource {name!r} ({suffix}), found {len(matches)}"
    return matches[0]


def run_components(build: Callable[[StackSpec, DockerHostComponent], Any], stack: str = "dev", **settings: Any) -> OfflineRun:
    """Build only some components (a service and what it needs) on the stack's apps host, under
    the recording engine: `run_components(lambda spec, host: Redis(spec, host))`."""
    config, secret_keys = stack_config(stack, **settings)

    def program() -> dict:
        spec = load_spec(stack, config, set(secret_keys))
        host = DockerHostComponent(spec.host_for("apps"), f"ceres-{stack}")
        build(spec, host)
        return {}

    engine = OfflineEngine(stack, config, secret_keys)
    engine.run(program)
    return OfflineRun(stack, engine.monitor.recorded, {})
