"""Mattermost as the recording engine sees it: one container shaped for production, its own
database, secrets only as secrets, and two bootstrap steps that run after the container."""

from __future__ import annotations


import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.docker_host import PROBE
from components.integrations.oidc import OidcClientEdge
from components.services.keycloak import Keycloak
from components.services.mattermost import Mattermost
from components.services.postgres import PostgreSQL
from stacks.tiers import BASE
from tests.support import assert_no_plain_secrets, by_name, of_type, run_components, served_without_proxy


@pytest.fixture(scope="module")
def built():
    services: dict[str, Mattermost] = {}

    def build(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("mattermost",))
        services["mattermost"] = Mattermost(spec, host, postgres=postgres)
        served_without_proxy(services["mattermost"])

    run = run_components(build)
    return run, services["mattermost"]


def container(run):
    return by_name(run, "mattermost", "Container")


def test_runs_the_pinned_image_in_the_production_shape(built):
    run, _ = built
    image = by_name(run, "mattermost-image", "RemoteImage")
    assert image.inputs["name"] == BASE["services"]["mattermost"]["image"]
    inputs = container(run).inputs
    assert inputs["restart"] == "unless-stopped"
    assert inputs["wait"] is True
    assert inputs["memory"] == BASE["services"]["mattermost"]["memory_mb"]
    assert not inputs["ports"]
    # Probed with the host's busybox: images after 10.11 have no curl (or shell) of their own.
    assert inputs["healthcheck"]["tests"] == [
        "CMD", PROBE, "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8065/api/v4/system/ping",
    ]
    assert by_name(run, "local-probe-fill", "Container").urn in container(run).dependencies


def test_joins_the_edge_for_caddy_data_for_postgres_and_monitoring_for_alertmanager(built):
    run, mattermost = built
    networks = {n["name"] for n in container(run).inputs["networksAdvanced"]}
    assert networks == {"ceres-dev-edge", "ceres-dev-data", "ceres-dev-monitoring"}
    assert mattermost.upstream == "mattermost:8065"


def test_every_image_volume_is_a_named_volume(built):
    run, _ = built
    mounts = {m["containerPath"]: m["volumeName"] for m in container(run).inputs["volumes"] if not m.get("readOnly")}
    assert mounts == {
        "/mattermost/config": "ceres-dev-mattermost-config",
        "/mattermost/data": "ceres-dev-mattermost-data",
        "/mattermost/logs": "ceres-dev-mattermost-logs",
        "/mattermost/plugins": "ceres-dev-mattermost-plugins",
        "/mattermost/client/plugins": "ceres-dev-mattermost-client-plugins",
    }


def test_configured_for_its_public_url_and_the_integrations(built):
    run, mattermost = built
    envs = container(run).inputs["envs"]
    assert mattermost.url == "https://mattermost.ceres.localhost"
    assert "MM_SERVICESETTINGS_SITEURL=https://mattermost.ceres.localhost" in envs
    for setting in ("ENABLEINCOMINGWEBHOOKS", "ENABLEPOSTUSERNAMEOVERRIDE", "ENABLEPOSTICONOVERRIDE",
                    "ENABLEBOTACCOUNTCREATION", "ENABLEUSERACCESSTOKENS", "ENABLELOCALMODE"):
        assert f"MM_SERVICESETTINGS_{setting}=true" in envs
    assert "MM_SQLSETTINGS_DRIVERNAME=postgres" in envs


def test_uses_its_own_database_through_the_db_edge(built):
    run, _ = built
    component = by_name(run, "mattermost", "ceres:services:Mattermost")
    edge = by_name(run, "db-mattermost", "DatabaseEdge")
    assert edge.parent == component.urn
    provisioning = by_name(run, "postgres-mattermost-database", "Command")
    assert provisioning.urn in container(run).dependencies, "Mattermost starts once its database exists"
    # The data source carries the password: it reaches the container only as a secret.
    envs = container(run).inputs["envs"]
    assert SECRET_MARK in envs
    assert not any(e.startswith("MM_SQLSETTINGS_DATASOURCE=") for e in envs)


def test_no_secret_reaches_any_input_in_plain_text(built):
    run, _ = built
    assert_no_plain_secrets(run)


def test_bootstrap_runs_in_the_container_as_its_user_with_the_password_from_env(built):
    run, _ = built
    setup = by_name(run, "mattermost-bootstrap", "Command")
    assert setup.inputs["create"] == "docker exec -i -u mattermost -e MM_ADMIN_PASSWORD ceres-dev-mattermost sh -s"
    assert setup.inputs["environment"]["MM_ADMIN_PASSWORD"] == SECRET_MARK
    assert container(run).urn in setup.dependencies
    script = setup.inputs["stdin"]
    assert "ADMIN=ceres-admin" in script and "BOT=ceres-bot" in script


def test_the_bot_makes_the_team_and_one_channel_per_purpose_through_the_api(built):
    run, _ = built
    token = by_name(run, "mattermost-bot-token", "Command")
    team = by_name(run, "mattermost-team", "Team")
    assert team.inputs["team_name"] == "ceres" and team.inputs["token"] == SECRET_MARK
    assert team.inputs["api_url"] == "https://mattermost.ceres.localhost"
    assert team.inputs["verify_tls"] is False, "dev's certificates come from Caddy's internal CA"
    assert token.urn in team.dependencies, "the bot's token exists before it is used"
    channels = {c.inputs["channel_name"]: c for c in of_type(run, "mattermost:Channel")}
    assert set(channels) == {"dev", "projects", "ops", "alerts", "files"}
    assert all(team.urn in c.dependencies and c.inputs["team_id"] == "mattermost-team-team-id" for c in channels.values())
    assert all("token" in c.secret_outputs for c in (team, *channels.values()))


def test_bot_token_is_its_own_step_after_the_setup_and_a_secret(built):
    run, mattermost = built
    token = by_name(run, "mattermost-bot-token", "Command")
    setup = by_name(run, "mattermost-bootstrap", "Command")
    assert setup.urn in token.dependencies and container(run).urn in token.dependencies
    assert "stdout" in token.secret_outputs
    assert "mmctl --local" in token.inputs["stdin"]
    assert _sync_await(mattermost.bot_token.is_secret())


def test_exposes_credentials_as_secrets_and_the_team(built):
    _, mattermost = built
    for secret in (mattermost.admin_username, mattermost.admin_password, mattermost.bot_token):
        assert _sync_await(secret.is_secret())
    assert mattermost.team == "ceres"
    assert len(of_type(built[0], "RandomPassword")) == 3  # superuser, Mattermost's role, its admin


# --- single sign-on (sso-mattermost) ---------------------------------------------------------------

ISSUER = "https://keycloak.ceres.localhost/realms/ceres"
INTERNAL_ISSUER = "http://keycloak:8080/realms/ceres"


def build_with_sso(edition: str = "team"):
    """Keycloak with its realm, Mattermost signing in through it, and the edge between them."""
    services: dict[str, Mattermost] = {}

    def program(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("mattermost",))
        keycloak = Keycloak(spec, host, postgres=None)
        services["mattermost"] = Mattermost(spec, host, postgres=postgres, sso=True)
        served_without_proxy(services["mattermost"])
        keycloak.open_realm(spec, reachable_after=[])
        OidcClientEdge(services["mattermost"], keycloak)

    run = run_components(program, services={"mattermost": {"edition": edition}})
    return run, services["mattermost"]


@pytest.fixture(scope="module")
def team_sso():
    return build_with_sso("team")


@pytest.fixture(scope="module")
def enterprise_sso():
    return build_with_sso("enterprise")


def settings_env(run) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container(run).inputs["envs"] if e != SECRET_MARK)


def test_without_the_edge_no_sign_in_is_configured(built):
    run, mattermost = built
    assert mattermost.oidc is None
    assert not [e for e in container(run).inputs["envs"] if "GITLABSETTINGS" in e or "OPENIDSETTINGS" in e]


def test_team_edition_client_redirects_exactly_to_the_gitlab_callbacks(team_sso):
    run, _ = team_sso
    client = by_name(run, "mattermost-oidc-client", "Client").inputs
    assert client["clientId"] == "mattermost"
    assert client["validRedirectUris"] == [
        "https://mattermost.ceres.localhost/signup/gitlab/complete",
        "https://mattermost.ceres.localhost/login/gitlab/complete",
    ]
    assert client["clientSecret"] == SECRET_MARK


def test_team_edition_uses_the_gitlab_provider_pointed_at_the_realm(team_sso):
    run, _ = team_sso
    env = settings_env(run)
    assert env["MM_GITLABSETTINGS_ENABLE"] == "true"
    assert env["MM_GITLABSETTINGS_ID"] == "mattermost"
    # The browser goes to the public issuer; Mattermost's own calls stay on the Docker network.
    assert env["MM_GITLABSETTINGS_AUTHENDPOINT"] == f"{ISSUER}/protocol/openid-connect/auth"
    assert env["MM_GITLABSETTINGS_TOKENENDPOINT"] == f"{INTERNAL_ISSUER}/protocol/openid-connect/token"
    assert env["MM_GITLABSETTINGS_USERAPIENDPOINT"] == f"{INTERNAL_ISSUER}/protocol/openid-connect/userinfo"
    assert "openid" in env["MM_GITLABSETTINGS_SCOPE"].split()
    assert not any(key.startswith("MM_OPENIDSETTINGS_") for key in env)


def test_team_edition_gets_gitlab_shaped_claims_with_a_numeric_id(team_sso):
    run, _ = team_sso
    mappers = {m.inputs["claimName"]: m.inputs for m in of_type(run, "UserPropertyProtocolMapper")}
    assert set(mappers) == {"id", "username", "email"}
    # Mattermost decodes GitLab's id as int64: a UUID string would not do.
    assert mappers["id"]["userProperty"] == "createdTimestamp"
    assert mappers["id"]["claimValueType"] == "long"
    assert mappers["username"]["userProperty"] == "username"
    assert all(m["addToUserinfo"] is True for m in mappers.values()), "Mattermost reads the userinfo endpoint"


def test_the_client_secret_reaches_mattermost_only_as_a_secret(team_sso):
    run, _ = team_sso
    envs = container(run).inputs["envs"]
    assert not any(e.startswith("MM_GITLABSETTINGS_SECRET") for e in envs)
    assert envs.count(SECRET_MARK) == 2  # the data source and the client secret
    assert_no_plain_secrets(run)


def test_the_admin_group_maps_to_no_mattermost_role(team_sso):
    run, mattermost = team_sso
    # Team Edition has no group sync and the GitLab provider no role claim: nothing in the
    # configuration mentions the admin group, and only the bootstrap admin is made system admin.
    assert mattermost.oidc.admin_group == "ceres-admins"
    assert not [e for e in container(run).inputs["envs"] if "ceres-admins" in e or "ADMIN" in e.split("=")[0]]
    setup = by_name(run, "mattermost-bootstrap", "Command").inputs["stdin"]
    assert setup.count("roles system-admin") == 1 and 'roles system-admin "$ADMIN"' in setup


def test_licensed_edition_uses_native_openid_by_internal_discovery(enterprise_sso):
    run, _ = enterprise_sso
    client = by_name(run, "mattermost-oidc-client", "Client").inputs
    assert client["validRedirectUris"] == ["https://mattermost.ceres.localhost/signup/openid/complete"]
    env = settings_env(run)
    assert env["MM_OPENIDSETTINGS_ENABLE"] == "true"
    assert env["MM_OPENIDSETTINGS_ID"] == "mattermost"
    assert env["MM_OPENIDSETTINGS_DISCOVERYENDPOINT"] == f"{INTERNAL_ISSUER}/.well-known/openid-configuration"
    assert not any(key.startswith("MM_GITLABSETTINGS_") for key in env)
    # Native OpenID identifies people by `sub`: no GitLab-shaped claims are added.
    assert not of_type(run, "UserPropertyProtocolMapper")
    assert_no_plain_secrets(run)
