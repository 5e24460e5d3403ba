"""Nextcloud, its cron container and bootstrap, built under the recording engine."""

from __future__ import annotations

import pulumi

from cli.offline import SECRET_MARK
from components.config.nextcloud import ADMIN_USERNAME, REDIS_CONFIG_NAME, REDIS_PASSWORD_VARIABLE
from components.services.nextcloud import Nextcloud
from tests.support import (
    assert_no_plain_secrets,
    assert_oidc_client,
    assert_production_shape,
    build_with_sso,
    build_with_stores,
    by_name,
    unwrap,
)


def build(postgres: bool = True, redis: bool = True):
    return build_with_stores(Nextcloud, "nextcloud", postgres=postgres, redis=redis)


def container(run, name: str = "nextcloud"):
    return by_name(run, name, "Container")


def edges(run) -> set[str]:
    return {r.name for r in run.resources if r.type.startswith("ceres:integrations:")}


def test_app_has_the_production_shape_and_a_health_check_on_status_php():
    run, nextcloud = build()
    app = assert_production_shape(run, "nextcloud", image="nextcloud:31.0.8-apache", memory=1024,
                                  networks=["ceres-dev-edge", "ceres-dev-data"])
    check = app.inputs["healthcheck"]
    assert check["tests"] == ["CMD", "curl", "-fsS", "-o", "/dev/null", "-H", "Host: nextcloud.ceres.localhost",
                              "http://localhost:80/status.php"]
    assert check["startPeriod"] == "300s"
    assert nextcloud.url == "https://nextcloud.ceres.localhost" and nextcloud.upstream == "nextcloud:80"


def test_installs_itself_behind_the_proxy_for_its_public_url():
    run, nextcloud = build()
    envs = container(run).inputs["envs"]
    for entry in (f"NEXTCLOUD_ADMIN_USER={ADMIN_USERNAME}", "NEXTCLOUD_TRUSTED_DOMAINS=nextcloud.ceres.localhost",
                  "OVERWRITEPROTOCOL=https", "OVERWRITEHOST=nextcloud.ceres.localhost",
                  "OVERWRITECLIURL=https://nextcloud.ceres.localhost", "APACHE_DISABLE_REWRITE_IP=1",
                  "TRUSTED_PROXIES=10.213.0.2"):
        assert entry in envs
    password = unwrap(by_name(run, "nextcloud-admin-password", "RandomPassword").state["result"])
    assert f"NEXTCLOUD_ADMIN_PASSWORD={password}" in unwrap(container(run).state["envs"])
    assert nextcloud.admin_username == ADMIN_USERNAME and isinstance(nextcloud.admin_password, pulumi.Output)


def test_database_and_cache_edges_with_secret_credentials_and_no_image_redis_variables():
    run, _ = build()
    assert edges(run) == {"db-nextcloud", "cache-nextcloud"}
    envs = container(run).inputs["envs"]
    assert {"POSTGRES_HOST=postgres:5432", "POSTGRES_DB=nextcloud", "POSTGRES_USER=nextcloud"} <= set(envs)
    opened = unwrap(container(run).state["envs"])
    redis_password = unwrap(by_name(run, "redis-nextcloud-password", "RandomPassword").state["result"])
    assert f"{REDIS_PASSWORD_VARIABLE}={redis_password}" in opened
    assert not any(e.startswith("REDIS_HOST") for e in opened), "the image's Redis variables would break ACL logins"
    for step in ("postgres-nextcloud-database",):
        assert by_name(run, step, "Command").urn in container(run).dependencies
    assert container(run, "redis").urn in container(run).dependencies


def test_bootstrap_sets_cron_mode_and_writes_the_redis_config_as_www_data():
    run, _ = build()
    step = by_name(run, "nextcloud-bootstrap", "Command")
    assert step.inputs["create"] == "docker exec -i -u www-data ceres-dev-nextcloud sh -s"
    assert "occ background:cron" in step.inputs["stdin"]
    assert REDIS_CONFIG_NAME in step.inputs["stdin"] and "'dbindex' => 1" in step.inputs["stdin"]
    assert container(run).urn in step.dependencies


def test_cron_container_shares_the_image_and_volume_and_gets_only_the_redis_password():
    run, _ = build()
    app, cron = container(run), container(run, "nextcloud-cron")
    assert cron.inputs["image"] == app.inputs["image"]
    assert cron.inputs["command"] == ["/cron.sh"]
    assert cron.inputs["volumes"] == [v for v in app.inputs["volumes"] if v["containerPath"] == "/var/www/html"]
    assert cron.inputs["name"] == "ceres-dev-nextcloud-cron"
    assert cron.inputs["restart"] == "unless-stopped" and cron.inputs["wait"] is True and cron.inputs["healthcheck"]["tests"]
    assert cron.inputs["memory"] == 1024 and not cron.inputs.get("ports")
    assert cron.inputs["envs"] == [SECRET_MARK]
    assert unwrap(cron.state["envs"])[0].startswith(f"{REDIS_PASSWORD_VARIABLE}=")
    assert {app.urn, by_name(run, "nextcloud-bootstrap", "Command").urn} <= set(cron.dependencies)


def test_without_postgres_or_redis_it_runs_on_sqlite_and_apcu():
    run, _ = build(postgres=False, redis=False)
    assert edges(run) == set()
    envs = container(run).inputs["envs"]
    assert "SQLITE_DATABASE=nextcloud" in envs and not any(e.startswith("POSTGRES_") for e in envs)
    assert [n["name"] for n in container(run).inputs["networksAdvanced"]] == ["ceres-dev-edge"]
    script = by_name(run, "nextcloud-bootstrap", "Command").inputs["stdin"]
    assert f"rm -f /var/www/html/config/{REDIS_CONFIG_NAME}" in script
    assert container(run, "nextcloud-cron").inputs["envs"] == []


def test_no_secret_reaches_a_plain_input():
    run, _ = build()
    assert_no_plain_secrets(run)


# Single sign-on: Keycloak, its realm, Nextcloud with `sso`, and the sso-nextcloud edge between them.

def build_sso():
    return build_with_sso("nextcloud", lambda spec, host: Nextcloud(spec, host, sso=True))


def test_without_sso_there_is_no_provider_step():
    run, nextcloud = build()
    assert nextcloud.oidc is None
    assert not [r for r in run.resources if r.name.startswith("nextcloud-sso") or r.type.startswith("keycloak:")]


def test_the_keycloak_client_allows_exactly_user_oidc_s_callback_at_the_public_url():
    run, made = build_sso()
    assert_oidc_client(run, "nextcloud", [
        "https://nextcloud.ceres.localhost/apps/user_oidc/code",
        "https://nextcloud.ceres.localhost/index.php/apps/user_oidc/code",
    ])
    assert made["nextcloud"].oidc.issuer_url == f"https://keycloak.ceres.localhost/realms/{made['spec'].sso.realm}"


def test_members_of_the_admin_group_hold_the_client_role_nextcloud_provisions_as_admin():
    run, made = build_sso()
    client = by_name(run, "nextcloud-oidc-client", "Client")
    role = by_name(run, "nextcloud-admin-role", "Role")
    assert role.inputs["name"] == "admin" and role.inputs["clientId"] == f"{client.name}-id"
    grant = by_name(run, "nextcloud-admin-role-grant", "GroupRoles")
    admins = by_name(run, "keycloak-admins-group", "Group")
    assert admins.inputs["name"] == made["spec"].sso.admin_group
    assert grant.inputs["groupId"] == f"{admins.name}-id" and grant.inputs["roleIds"] == [f"{role.name}-id"]
    assert grant.inputs["exhaustive"] is False
    claim = by_name(run, "nextcloud-admin-role-claim", "UserClientRoleProtocolMapper")
    assert claim.inputs["claimName"] == "nextcloud_groups" and claim.inputs["clientIdForRoleMappings"] == "nextcloud"
    assert claim.inputs["multivalued"] is True and claim.inputs["addToIdToken"] is True
    edge = by_name(run, "sso-nextcloud", "OidcClientEdge")
    assert {role.parent, grant.parent, claim.parent} == {edge.urn}


def test_the_provider_step_discovers_the_realm_and_provisions_the_admin_group_from_that_claim():
    run, made = build_sso()
    step = by_name(run, "nextcloud-sso", "Command")
    assert step.inputs["create"] == "docker exec -i -u www-data -e CERES_OIDC_CLIENT_SECRET ceres-dev-nextcloud sh -s"
    assert step.inputs["environment"]["CERES_OIDC_CLIENT_SECRET"] == SECRET_MARK
    script = step.inputs["stdin"]
    assert f"--discoveryuri=http://keycloak:8080/realms/{made['spec'].sso.realm}/.well-known/openid-configuration" in script
    assert "--clientid=nextcloud" in script and "--mapping-groups=nextcloud_groups" in script
    assert "--group-whitelist-regex='^admin$'" in script
    assert {by_name(run, "nextcloud-oidc-client", "Client").urn, container(run).urn,
            by_name(run, "nextcloud-bootstrap", "Command").urn,
            by_name(run, "nextcloud-admin-role-grant", "GroupRoles").urn} <= set(step.dependencies)


def test_with_sso_no_secret_reaches_a_plain_input():
    run, _ = build_sso()
    assert_no_plain_secrets(run)
