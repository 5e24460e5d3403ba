"""Wiki.js as the recording engine sees it, with its PostgreSQL edge and with the SQLite fallback."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.services.postgres import PostgreSQL
from components.services.wikijs import WikiJs
from stacks.tiers import BASE
from tests.support import by_name, run_components


def build_run(with_postgres: bool):
    services: dict[str, WikiJs] = {}

    def build(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("wikijs",)) if with_postgres else None
        services["wikijs"] = WikiJs(spec, host, postgres=postgres)

    run = run_components(build)
    return run, services["wikijs"]


@pytest.fixture(scope="module")
def with_postgres():
    return build_run(with_postgres=True)


@pytest.fixture(scope="module")
def with_sqlite():
    return build_run(with_postgres=False)


def container(run):
    return by_name(run, "wikijs", "Container")


def test_runs_the_pinned_image_in_the_production_shape(with_postgres):
    run, wikijs = with_postgres
    assert by_name(run, "wikijs-image", "RemoteImage").inputs["name"] == BASE["services"]["wikijs"]["image"]
    inputs = container(run).inputs
    assert inputs["restart"] == "unless-stopped" and inputs["wait"] is True
    assert inputs["memory"] == BASE["services"]["wikijs"]["memory_mb"]
    assert not inputs["ports"]
    assert inputs["healthcheck"]["tests"] == ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:3000/healthz"]
    assert wikijs.url == "https://wikijs.ceres.localhost"
    assert wikijs.upstream == "wikijs:3000"


def test_both_image_volumes_are_named(with_postgres):
    run, _ = with_postgres
    mounts = {m["containerPath"]: m["volumeName"] for m in container(run).inputs["volumes"]}
    assert mounts == {"/wiki/data": "ceres-dev-wikijs-data", "/wiki/data/content": "ceres-dev-wikijs-content"}


def test_postgres_password_arrives_as_a_secret_file_not_in_the_environment(with_postgres):
    run, _ = with_postgres
    inputs = container(run).inputs
    envs = inputs["envs"]
    for entry in ("DB_TYPE=postgres", "DB_HOST=postgres", "DB_PORT=5432", "DB_USER=wikijs", "DB_NAME=wikijs",
                  "DB_PASS_FILE=/wiki/.db-password"):
        assert entry in envs
    assert not any(e.startswith("DB_PASS=") for e in envs) and SECRET_MARK not in envs
    assert inputs["uploads"] == [{"file": "/wiki/.db-password", "content": SECRET_MARK}]
    assert by_name(run, "db-wikijs", "DatabaseEdge").parent == by_name(run, "wikijs", "ceres:services:WikiJs").urn
    assert by_name(run, "postgres-wikijs-database", "Command").urn in container(run).dependencies
    assert {n["name"] for n in inputs["networksAdvanced"]} == {"ceres-dev-edge", "ceres-dev-data"}


def test_without_postgres_it_uses_sqlite_on_the_data_volume(with_sqlite):
    run, _ = with_sqlite
    inputs = container(run).inputs
    assert inputs["envs"] == ["DB_TYPE=sqlite", "DB_FILEPATH=/wiki/data/wiki.sqlite"]
    assert not inputs["uploads"]
    assert [n["name"] for n in inputs["networksAdvanced"]] == ["ceres-dev-edge"]
    assert not [r for r in run.resources if r.type.endswith("DatabaseEdge")]


@pytest.mark.parametrize("variant", ["with_postgres", "with_sqlite"])
def test_no_secret_reaches_any_input_in_plain_text(variant, request):
    run, _ = request.getfixturevalue(variant)
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), f"{resource.name} carries a secret in plain text"


def test_bootstrap_is_a_node_script_run_after_the_container_with_secrets_from_env(with_postgres):
    run, _ = with_postgres
    step = by_name(run, "wikijs-bootstrap", "Command")
    assert step.inputs["create"] == (
        "docker exec -i -e WIKIJS_ADMIN_EMAIL -e WIKIJS_ADMIN_PASSWORD ceres-dev-wikijs sh -s"
    )
    assert step.inputs["environment"]["WIKIJS_ADMIN_EMAIL"] == SECRET_MARK
    assert step.inputs["environment"]["WIKIJS_ADMIN_PASSWORD"] == SECRET_MARK
    assert container(run).urn in step.dependencies
    assert "stdout" in step.secret_outputs
    assert "exec node -" in step.inputs["stdin"]
    assert '"siteUrl": "https://wikijs.ceres.localhost"' in step.inputs["stdin"]


def test_exposes_its_credentials_as_secrets(with_postgres):
    _, wikijs = with_postgres
    for secret in (wikijs.admin_email, wikijs.admin_password, wikijs.api_key):
        assert _sync_await(secret.is_secret())
