"""redis_exporter, built under the recording engine with the Redis it reads."""

from __future__ import annotations

import pytest

from components.services.redis import Redis
from components.services.redis_exporter import RedisExporter
from tests.support import (
    assert_logs_in_as_the_monitor,
    assert_probed_through_the_host,
    assert_production_shape,
    build_one,
    by_name,
    run_components,
)


def build():
    return build_one(lambda spec, host: RedisExporter(
        spec, host, redis=Redis(spec.services.redis, host, ("gitea",), monitoring=True)))


def test_exporter_has_the_production_shape_on_data_and_monitoring_networks():
    run, exporter = build()
    container = assert_production_shape(run, "redis_exporter", image="oliver006/redis_exporter:v1.75.0",
                                        memory=64, networks=["ceres-dev-data", "ceres-dev-monitoring"])
    assert_probed_through_the_host(container, "http://localhost:9121/health")
    assert exporter.metrics_target == "redis-exporter:9121"


def test_exporter_logs_in_as_its_own_acl_user():
    run, _ = build()
    container = assert_logs_in_as_the_monitor(
        run, "redis_exporter", "redis", ["REDIS_ADDR=redis://redis:6379", "REDIS_USER=ceres_monitor"], "REDIS_PASSWORD")
    assert by_name(run, "redis", "Container").urn in container.dependencies


def test_exporter_needs_a_redis_with_monitoring():
    with pytest.raises(Exception, match="monitoring=True"):
        run_components(lambda spec, host: RedisExporter(spec, host, redis=Redis(spec.services.redis, host, ("gitea",))))
