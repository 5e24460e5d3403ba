"""redis_exporter, built under the recording engine with the Redis it reads."""

from __future__ import annotations

import json

import pytest

from cli.offline import SECRET_MARK
from components.docker_host import PROBE
from components.services.redis import Redis
from components.services.redis_exporter import RedisExporter
from tests.support import by_name, run_components


def unwrap(value):
    if isinstance(value, dict):
        if "value" in value and len(value) == 2:
            return unwrap(value["value"])
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def build():
    made = {}

    def program(spec, host):
        redis = Redis(spec.services.redis, host, ("gitea",), monitoring=True)
        made["exporter"] = RedisExporter(spec, host, redis=redis)
    return run_components(program), made["exporter"]


def test_exporter_has_the_production_shape_on_data_and_monitoring_networks():
    run, exporter = build()
    container = by_name(run, "redis_exporter", "Container")
    assert by_name(run, "redis_exporter-image", "RemoteImage").inputs["name"] == "oliver006/redis_exporter:v1.75.0"
    assert container.inputs["restart"] == "unless-stopped" and container.inputs["wait"] is True
    assert container.inputs["memory"] == 64 and not container.inputs.get("ports")
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-data", "ceres-dev-monitoring"]
    # A scratch image: the probe busybox the host mounts does the check.
    assert container.inputs["healthcheck"]["tests"] == ["CMD", PROBE, "wget", "-q", "-O", "/dev/null", "http://localhost:9121/health"]
    assert "/ceres-probe" in [v["containerPath"] for v in container.inputs["volumes"]]
    assert exporter.metrics_target == "redis-exporter:9121"


def test_exporter_logs_in_as_its_own_acl_user():
    run, _ = build()
    container = by_name(run, "redis_exporter", "Container")
    envs = container.inputs["envs"]
    assert envs[:2] == ["REDIS_ADDR=redis://redis:6379", "REDIS_USER=ceres_monitor"]
    assert envs[2] == SECRET_MARK
    password = unwrap(by_name(run, "redis-ceres_monitor-password", "RandomPassword").state["result"])
    assert unwrap(container.state["envs"])[2] == f"REDIS_PASSWORD={password}"
    assert by_name(run, "redis", "Container").urn in container.dependencies
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), resource.name


def test_exporter_needs_a_redis_with_monitoring():
    with pytest.raises(Exception, match="monitoring=True"):
        run_components(lambda spec, host: RedisExporter(spec, host, redis=Redis(spec.services.redis, host, ("gitea",))))
