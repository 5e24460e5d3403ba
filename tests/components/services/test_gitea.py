"""Gitea with its database, cache, metrics and bootstrap, built under the recording engine."""

from __future__ import annotations

import pulumi

from cli.offline import SECRET_MARK
from components.config.gitea import ADMIN_PASSWORD_VARIABLE, ADMIN_USERNAME, TOKEN_NAME
from components.services.gitea import Gitea
from tests.support import (
    assert_no_plain_secrets,
    assert_oidc_client,
    assert_production_shape,
    build_with_sso,
    build_with_stores,
    by_name,
    of_type,
    unwrap,
)


def build(postgres: bool = True, redis: bool = True):
    return build_with_stores(Gitea, "gitea", postgres=postgres, redis=redis)


def env(run) -> list[str]:
    return by_name(run, "gitea", "Container").inputs["envs"]


def opened_env(run) -> list[str]:
    return unwrap(by_name(run, "gitea", "Container").state["envs"])


def edges(run) -> set[str]:
    return {r.name for r in run.resources if r.type.startswith("ceres:integrations:")}


def test_container_keeps_the_production_shape():
    run, gitea = build()
    container = assert_production_shape(run, "gitea", image="gitea/gitea:1.24.6", memory=512,
                                        networks=["ceres-dev-edge", "ceres-dev-data"])
    assert container.inputs["healthcheck"]["tests"][:2] == ["CMD", "curl"]
    assert gitea.url == "https://gitea.ceres.localhost" and gitea.upstream == "gitea:3000"


def test_cache_sessions_and_queues_use_its_own_redis_user_and_database():
    run, _ = build()
    assert edges(run) == {"db-gitea", "cache-gitea"}
    for edge in ("db-gitea", "cache-gitea"):
        parent = by_name(run, edge).parent
        assert next(r for r in run.resources if r.urn == parent).name == "gitea"
    assert {"GITEA__cache__ADAPTER=redis", "GITEA__session__PROVIDER=redis", "GITEA__queue__TYPE=redis"} <= set(env(run))
    password = unwrap(by_name(run, "redis-gitea-password", "RandomPassword").state["result"])
    url = f"redis://gitea:{password}@redis:6379/0"
    opened = opened_env(run)
    for key in ("GITEA__cache__HOST", "GITEA__session__PROVIDER_CONFIG", "GITEA__queue__CONN_STR"):
        assert f"{key}={url}" in opened
    assert sum(e == SECRET_MARK for e in env(run)) == 7  # key, token, metrics, db password, three redis URLs
    assert by_name(run, "redis", "Container").urn in by_name(run, "gitea", "Container").dependencies


def test_without_redis_gitea_keeps_them_in_memory_files_and_leveldb():
    run, _ = build(redis=False)
    assert edges(run) == {"db-gitea"}
    assert {"GITEA__cache__ADAPTER=memory", "GITEA__session__PROVIDER=file", "GITEA__queue__TYPE=level"} <= set(env(run))
    assert not any("redis" in e for e in env(run) if e != SECRET_MARK)


def test_without_a_database_or_cache_it_stays_off_the_data_network():
    run, _ = build(postgres=False, redis=False)
    container = by_name(run, "gitea", "Container")
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-edge"]
    assert "GITEA__database__DB_TYPE=sqlite3" in env(run)


def test_metrics_need_a_token_and_webhooks_reach_only_the_platforms_hosts_beyond_the_internet():
    run, gitea = build()
    assert "GITEA__metrics__ENABLED=true" in env(run)
    token = unwrap(by_name(run, "gitea-metrics-token", "RandomPassword").state["result"])
    assert f"GITEA__metrics__TOKEN={token}" in opened_env(run)
    assert "GITEA__webhook__ALLOWED_HOST_LIST=external,*.ceres.localhost" in env(run)
    assert isinstance(gitea.metrics_token, pulumi.Output)


def test_bootstrap_runs_as_git_after_the_container_and_returns_a_secret_token():
    run, gitea = build()
    step = by_name(run, "gitea-bootstrap", "Command")
    assert step.inputs["create"] == "docker exec -i -u git -e GITEA_ADMIN_PASSWORD ceres-dev-gitea sh -s"
    assert step.inputs["environment"][ADMIN_PASSWORD_VARIABLE] == SECRET_MARK
    assert f"--username {ADMIN_USERNAME}" in step.inputs["stdin"] and f"--token-name {TOKEN_NAME}" in step.inputs["stdin"]
    assert "ceres-admin@ceres.localhost" in step.inputs["stdin"]
    assert step.secret_outputs == ["stdout"]
    assert by_name(run, "gitea", "Container").urn in step.dependencies
    assert gitea.admin_username == ADMIN_USERNAME
    assert isinstance(gitea.admin_password, pulumi.Output) and isinstance(gitea.api_token, pulumi.Output)


def test_no_secret_reaches_a_plain_input():
    run, _ = build()
    for password in of_type(run, "RandomPassword"):
        assert "result" in password.secret_outputs
    assert_no_plain_secrets(run)


# Single sign-on: Keycloak, its realm, Gitea with `sso`, and the sso-gitea edge between them.

def build_sso():
    return build_with_sso("gitea", lambda spec, host: Gitea(spec, host, sso=True))


def test_without_sso_there_is_no_login_source_step():
    run, gitea = build()
    assert gitea.oidc is None
    assert not any(e.startswith("GITEA__oauth2_client__") for e in env(run))
    assert not [r for r in run.resources if r.name.startswith("gitea-sso")]


def test_the_keycloak_client_allows_exactly_giteas_callback_at_its_public_url():
    run, made = build_sso()
    assert_oidc_client(run, "gitea", ["https://gitea.ceres.localhost/user/oauth2/keycloak/callback"])
    assert made["gitea"].oidc.issuer_url == f"https://keycloak.ceres.localhost/realms/{made['spec'].sso.realm}"


def test_people_from_the_realm_get_accounts_named_after_their_keycloak_username():
    run, _ = build_sso()
    assert {"GITEA__oauth2_client__ENABLE_AUTO_REGISTRATION=true", "GITEA__oauth2_client__USERNAME=preferred_username",
            "GITEA__oauth2_client__ACCOUNT_LINKING=auto"} <= set(env(run))


def test_the_login_source_step_discovers_the_realm_and_maps_the_admin_group():
    run, made = build_sso()
    step = by_name(run, "gitea-sso", "Command")
    realm, admins = made["spec"].sso.realm, made["spec"].sso.admin_group
    assert step.inputs["create"] == "docker exec -i -u git -e CERES_OIDC_CLIENT_SECRET ceres-dev-gitea sh -s"
    assert step.inputs["environment"]["CERES_OIDC_CLIENT_SECRET"] == SECRET_MARK
    script = step.inputs["stdin"]
    assert f"--auto-discover-url http://keycloak:8080/realms/{realm}/.well-known/openid-configuration" in script
    assert "--key gitea" in script and "--name keycloak" in script
    assert f"--group-claim-name groups --admin-group {admins}" in script
    assert {by_name(run, "gitea-oidc-client", "Client").urn, by_name(run, "gitea", "Container").urn,
            by_name(run, "gitea-bootstrap", "Command").urn} <= set(step.dependencies)
    assert step.parent == by_name(run, "gitea", "ceres:services:Gitea").urn


def test_an_updated_login_source_restarts_gitea_after_the_step():
    run, _ = build_sso()
    reload = by_name(run, "gitea-sso-reload", "Command")
    assert "docker restart ceres-dev-gitea" in reload.inputs["create"]
    assert "CERES_SSO_RESULT" in reload.inputs["environment"]
    # Re-run whenever the step's script or the secret changes; the secret stays a secret.
    assert reload.inputs["triggers"][0] == by_name(run, "gitea-sso", "Command").inputs["stdin"]
    assert reload.inputs["triggers"][1] == SECRET_MARK
    assert by_name(run, "gitea-sso", "Command").urn in reload.dependencies


def test_with_sso_no_secret_reaches_a_plain_input():
    run, _ = build_sso()
    assert_no_plain_secrets(run)
