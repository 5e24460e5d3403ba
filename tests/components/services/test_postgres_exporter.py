"""postgres_exporter, built under the recording engine with the PostgreSQL it reads."""

from __future__ import annotations

import pytest

from components.services.postgres import PostgreSQL
from components.services.postgres_exporter import PostgresExporter
from tests.support import (
    assert_logs_in_as_the_monitor,
    assert_probed_through_the_host,
    assert_production_shape,
    build_one,
    by_name,
    run_components,
)


def build():
    return build_one(lambda spec, host: PostgresExporter(
        spec, host, postgres=PostgreSQL(spec.services.postgres, host, ("gitea",), monitoring=True)))


def test_exporter_has_the_production_shape_on_data_and_monitoring_networks():
    run, exporter = build()
    container = assert_production_shape(run, "postgres_exporter", image="quay.io/prometheuscommunity/postgres-exporter:v0.17.1",
                                        memory=64, networks=["ceres-dev-data", "ceres-dev-monitoring"])
    assert_probed_through_the_host(container, "http://localhost:9187/")
    assert exporter.metrics_target == "postgres-exporter:9187"


def test_exporter_reads_as_the_monitoring_role_once_it_exists():
    run, _ = build()
    container = assert_logs_in_as_the_monitor(
        run, "postgres_exporter", "postgres",
        ["DATA_SOURCE_URI=postgres:5432/postgres?sslmode=disable", "DATA_SOURCE_USER=ceres_monitor"], "DATA_SOURCE_PASS")
    assert by_name(run, "postgres-monitoring-role", "Command").urn in container.dependencies


def test_exporter_needs_a_postgres_with_monitoring():
    with pytest.raises(Exception, match="monitoring=True"):
        run_components(lambda spec, host: PostgresExporter(
            spec, host, postgres=PostgreSQL(spec.services.postgres, host, ("gitea",))))
