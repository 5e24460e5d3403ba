"""postgres_exporter, built under the recording engine with the PostgreSQL it reads."""

from __future__ import annotations

import json

import pytest

from cli.offline import SECRET_MARK
from components.docker_host import PROBE
from components.services.postgres import PostgreSQL
from components.services.postgres_exporter import PostgresExporter
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
        postgres = PostgreSQL(spec.services.postgres, host, ("gitea",), monitoring=True)
        made["exporter"] = PostgresExporter(spec, host, postgres=postgres)
    return run_components(program), made["exporter"]


def test_exporter_has_the_production_shape_on_data_and_monitoring_networks():
    run, exporter = build()
    container = by_name(run, "postgres_exporter", "Container")
    assert by_name(run, "postgres_exporter-image", "RemoteImage").inputs["name"] == "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
    assert container.inputs["restart"] == "unless-stopped" and container.inputs["wait"] is True
    assert container.inputs["memory"] == 64 and not container.inputs.get("ports")
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-data", "ceres-dev-monitoring"]
    assert container.inputs["healthcheck"]["tests"] == ["CMD", PROBE, "wget", "-q", "-O", "/dev/null", "http://localhost:9187/"]
    assert "/ceres-probe" in [v["containerPath"] for v in container.inputs["volumes"]]
    assert exporter.metrics_target == "postgres-exporter:9187"


def test_exporter_reads_as_the_monitoring_role_once_it_exists():
    run, _ = build()
    container = by_name(run, "postgres_exporter", "Container")
    envs = container.inputs["envs"]
    assert envs[:2] == ["DATA_SOURCE_URI=postgres:5432/postgres?sslmode=disable", "DATA_SOURCE_USER=ceres_monitor"]
    assert envs[2] == SECRET_MARK
    password = unwrap(by_name(run, "postgres-ceres_monitor-password", "RandomPassword").state["result"])
    assert unwrap(container.state["envs"])[2] == f"DATA_SOURCE_PASS={password}"
    assert by_name(run, "postgres-monitoring-role", "Command").urn in container.dependencies
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), resource.name


def test_exporter_needs_a_postgres_with_monitoring():
    with pytest.raises(Exception, match="monitoring=True"):
        run_components(lambda spec, host: PostgresExporter(
            spec, host, postgres=PostgreSQL(spec.services.postgres, host, ("gitea",))))
