"""Redmine as the recording engine sees it, with its PostgreSQL edge and with the SQLite fallback."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.services.postgres import PostgreSQL
from components.services.redmine import Redmine
from stacks.tiers import BASE
from tests.support import by_name, run_components


def build_run(with_postgres: bool):
    services: dict[str, Redmine] = {}

    def build(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("redmine",)) if with_postgres else None
        services["redmine"] = Redmine(spec, host, postgres=postgres)

    run = run_components(build)
    return run, services["redmine"]


@pytest.fixture(scope="module")
def with_postgres():
    return build_run(with_postgres=True)


@pytest.fixture(scope="module")
def with_sqlite():
    return build_run(with_postgres=False)


def container(run):
    return by_name(run, "redmine", "Container")


def test_runs_the_pinned_image_in_the_production_shape(with_postgres):
    run, redmine = with_postgres
    assert by_name(run, "redmine-image", "RemoteImage").inputs["name"] == BASE["services"]["redmine"]["image"]
    inputs = container(run).inputs
    assert inputs["restart"] == "unless-stopped" and inputs["wait"] is True
    assert inputs["memory"] == BASE["services"]["redmine"]["memory_mb"]
    assert not inputs["ports"]
    # The image has wget, not curl.
    assert inputs["healthcheck"]["tests"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/login"]
    assert redmine.url == "https://redmine.ceres.localhost"
    assert redmine.upstream == "redmine:3000"


def test_postgres_credentials_reach_it_through_the_db_edge(with_postgres):
    run, _ = with_postgres
    envs = container(run).inputs["envs"]
    for entry in ("REDMINE_DB_POSTGRES=postgres", "REDMINE_DB_PORT=5432", "REDMINE_DB_DATABASE=redmine",
                  "REDMINE_DB_USERNAME=redmine"):
        assert entry in envs
    assert envs.count(SECRET_MARK) == 2  # the database password and the secret key base
    edge = by_name(run, "db-redmine", "DatabaseEdge")
    assert edge.parent == by_name(run, "redmine", "ceres:services:Redmine").urn
    assert by_name(run, "postgres-redmine-database", "Command").urn in container(run).dependencies
    networks = {n["name"] for n in container(run).inputs["networksAdvanced"]}
    assert networks == {"ceres-dev-edge", "ceres-dev-data"}


def test_without_postgres_it_keeps_sqlite_on_a_volume_and_stays_off_the_data_network(with_sqlite):
    run, _ = with_sqlite
    inputs = container(run).inputs
    assert not any(e.startswith("REDMINE_DB_") for e in inputs["envs"] if e != SECRET_MARK)
    mounts = {m["containerPath"]: m["volumeName"] for m in inputs["volumes"]}
    assert mounts == {
        "/usr/src/redmine/files": "ceres-dev-redmine-files",
        "/usr/src/redmine/sqlite": "ceres-dev-redmine-sqlite",
    }
    assert [n["name"] for n in inputs["networksAdvanced"]] == ["ceres-dev-edge"]
    assert not [r for r in run.resources if r.type.endswith("DatabaseEdge")]


def test_files_live_on_a_named_volume(with_postgres):
    run, _ = with_postgres
    mounts = {m["containerPath"]: m["volumeName"] for m in container(run).inputs["volumes"]}
    assert mounts == {"/usr/src/redmine/files": "ceres-dev-redmine-files"}


@pytest.mark.parametrize("variant", ["with_postgres", "with_sqlite"])
def test_no_secret_reaches_any_input_in_plain_text(variant, request):
    run, _ = request.getfixturevalue(variant)
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), f"{resource.name} carries a secret in plain text"


def test_bootstrap_runs_as_redmine_after_the_container_with_secrets_from_env(with_postgres):
    run, _ = with_postgres
    step = by_name(run, "redmine-bootstrap", "Command")
    assert step.inputs["create"] == (
        "docker exec -i -u redmine -e REDMINE_ADMIN_PASSWORD -e REDMINE_SYS_API_KEY ceres-dev-redmine sh -s"
    )
    assert step.inputs["environment"]["REDMINE_ADMIN_PASSWORD"] == SECRET_MARK
    assert step.inputs["environment"]["REDMINE_SYS_API_KEY"] == SECRET_MARK
    assert container(run).urn in step.dependencies
    assert "stdout" in step.secret_outputs
    assert "'host_name' => 'redmine.ceres.localhost'" in step.inputs["stdin"]


def test_exposes_its_credentials_as_secrets(with_postgres):
    _, redmine = with_postgres
    for secret in (redmine.admin_password, redmine.api_key, redmine.sys_api_key):
        assert _sync_await(secret.is_secret())
