"""PostgreSQL's monitoring role, built under the recording engine (the consumers' side is
covered by tests/stacks/test_platform.py)."""

from __future__ import annotations


import pytest

from cli.offline import SECRET_MARK
from components.config.postgres import MONITOR_ROLE, monitoring_sql, retire_sql
from components.services.postgres import PostgreSQL
from tests.support import assert_no_plain_secrets, by_name, of_type, run_components

CONSUMERS = ("gitea", "nextcloud")


def build(monitoring: bool):
    made = {}

    def program(spec, host):
        made["postgres"] = PostgreSQL(spec.services.postgres, host, CONSUMERS, monitoring=monitoring)
    return run_components(program), made["postgres"]


def hba(run) -> str:
    container = by_name(run, "postgres", "Container")
    return next(u["content"] for u in container.inputs["uploads"] if u["file"].endswith("pg_hba.conf"))


def test_monitoring_provisions_its_role_after_the_server_with_a_secret_password():
    run, postgres = build(monitoring=True)
    step = by_name(run, "postgres-monitoring-role", "Command")
    assert step.inputs["stdin"] == monitoring_sql()
    assert step.inputs["environment"]["CERES_ROLE_PASSWORD"] == SECRET_MARK
    assert "-e CERES_ROLE_PASSWORD" in step.inputs["create"]
    assert retire_sql(MONITOR_ROLE).splitlines()[1] in step.inputs["delete"]
    assert by_name(run, "postgres", "Container").urn in step.dependencies
    assert f"host    postgres  {MONITOR_ROLE}  all  scram-sha-256" in hba(run)
    login = postgres.monitoring_login()
    assert (login.host, login.port, login.name, login.user) == ("postgres", 5432, "postgres", MONITOR_ROLE)
    assert login.ready is not postgres.database("gitea").ready
    assert_no_plain_secrets(run)


def test_consumers_keep_their_names_and_steps():
    run, postgres = build(monitoring=True)
    for consumer in CONSUMERS:
        assert f"CREATE DATABASE {consumer} OWNER {consumer}" in by_name(run, f"postgres-{consumer}-database", "Command").inputs["stdin"]
        assert postgres.database(consumer).user == consumer
    assert {r.name for r in of_type(run, "RandomPassword")} == {
        "postgres-superuser", "postgres-gitea-password", "postgres-nextcloud-password", f"postgres-{MONITOR_ROLE}-password",
    }


def test_without_monitoring_there_is_no_role_no_hba_line_and_no_login():
    run, postgres = build(monitoring=False)
    assert "postgres-monitoring-role" not in {r.name for r in of_type(run, "Command")}
    assert MONITOR_ROLE not in hba(run)
    with pytest.raises(KeyError, match="monitoring=True"):
        postgres.monitoring_login()
