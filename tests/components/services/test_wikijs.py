"""Wiki.js as the recording engine sees it, with its PostgreSQL edge and with the SQLite fallback."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.services.wikijs import WikiJs
from stacks.tiers import BASE
from tests.support import (
    assert_no_plain_secrets,
    assert_oidc_client,
    assert_production_shape,
    build_on_postgres_or_sqlite,
    build_with_sso,
    by_name,
)


def build_run(with_postgres: bool):
    return build_on_postgres_or_sqlite(WikiJs, "wikijs", with_postgres)


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
    inputs = assert_production_shape(run, "wikijs", image=BASE["services"]["wikijs"]["image"],
                                     memory=BASE["services"]["wikijs"]["memory_mb"]).inputs
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
    assert_no_plain_secrets(run)


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


# Single sign-on: Keycloak, its realm, Wiki.js with `sso`, and the sso-wikijs edge between them.

@pytest.fixture(scope="module")
def with_sso():
    return build_with_sso("wikijs", lambda spec, host: WikiJs(spec, host, postgres=None, sso=True))


def sso_settings(run) -> dict:
    """The settings object spliced into the step's Node script."""
    stdin = by_name(run, "wikijs-sso", "Command").inputs["stdin"]
    start = stdin.index("const settings = ") + len("const settings = ")
    return json.JSONDecoder().raw_decode(stdin[start:])[0]


def test_without_sso_there_is_no_strategy_step(with_postgres):
    run, wikijs = with_postgres
    assert wikijs.oidc is None
    assert not [r for r in run.resources if r.name == "wikijs-sso"]


def test_the_keycloak_client_allows_exactly_the_strategy_callback_at_the_public_url(with_sso):
    run, made = with_sso
    assert_oidc_client(run, "wikijs", ["https://wikijs.ceres.localhost/login/keycloak/callback"])
    assert sso_settings(run)["strategyKey"] == "keycloak"


def test_the_strategy_points_at_the_realm_public_for_browsers_internal_for_wikijs(with_sso):
    run, made = with_sso
    realm = made["spec"].sso.realm
    public = f"https://keycloak.ceres.localhost/realms/{realm}"
    internal = f"http://keycloak:8080/realms/{realm}/protocol/openid-connect"
    assert sso_settings(run)["config"] == {
        "clientId": "wikijs",
        "authorizationURL": f"{public}/protocol/openid-connect/auth",
        "tokenURL": f"{internal}/token",
        "userInfoURL": f"{internal}/userinfo",
        "issuer": public,
        "emailClaim": "email",
        "displayNameClaim": "name",
        "mapGroups": True,
        "groupsClaim": "groups",
        "logoutURL": f"{public}/protocol/openid-connect/logout?client_id=wikijs"
                     "&post_logout_redirect_uri=https%3A%2F%2Fwikijs.ceres.localhost%2F",
    }


def test_the_realm_groups_become_wiki_groups_and_the_admin_one_holds_manage_system(with_sso):
    run, made = with_sso
    groups = {g["name"]: g for g in sso_settings(run)["groups"]}
    assert set(groups) == {made["spec"].sso.admin_group, made["spec"].sso.user_group}
    assert groups[made["spec"].sso.admin_group]["permissions"] == ["manage:system"]
    assert "manage:system" not in groups[made["spec"].sso.user_group]["permissions"]


def test_the_strategy_step_runs_after_the_bootstrap_with_every_secret_from_env(with_sso):
    run, _ = with_sso
    step = by_name(run, "wikijs-sso", "Command")
    assert step.inputs["create"] == ("docker exec -i -e WIKIJS_ADMIN_EMAIL -e WIKIJS_ADMIN_PASSWORD "
                                     "-e CERES_OIDC_CLIENT_SECRET ceres-dev-wikijs sh -s")
    for variable in ("WIKIJS_ADMIN_EMAIL", "WIKIJS_ADMIN_PASSWORD", "CERES_OIDC_CLIENT_SECRET"):
        assert step.inputs["environment"][variable] == SECRET_MARK
    assert {by_name(run, "wikijs-oidc-client", "Client").urn, container(run).urn,
            by_name(run, "wikijs-bootstrap", "Command").urn} <= set(step.dependencies)


def test_with_sso_no_secret_reaches_a_plain_input(with_sso):
    run, _ = with_sso
    assert_no_plain_secrets(run)
