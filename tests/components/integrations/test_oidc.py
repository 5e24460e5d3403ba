"""The OIDC client edge, proven with Grafana (an app configured through its environment)."""

from __future__ import annotations


import pytest

from components.integrations.oidc import OidcClientEdge, UserClaim, oidc_login
from components.services.grafana import Grafana
from components.services.keycloak import Keycloak
from tests.support import assert_no_plain_secrets, by_name, run_components

ISSUER = "https://keycloak.ceres.localhost/realms/ceres"
INTERNAL = "http://keycloak:8080/realms/ceres"


def build(stack: str = "dev", claims: tuple[UserClaim, ...] = (), **settings):
    """Keycloak with its realm, Grafana signing in through it, and the edge between them."""

    def program(spec, host):
        keycloak = Keycloak(spec, host, postgres=None)
        grafana = Grafana(spec, host, postgres=None, sso=True)
        if claims:
            grafana.oidc = oidc_login(spec, grafana, ("/login/generic_oauth",), claims=claims)
        keycloak.open_realm(spec, reachable_after=[])
        OidcClientEdge(grafana, keycloak)

    return run_components(program, stack=stack, **settings)


def grafana_env(run) -> dict[str, str]:
    return dict(e.split("=", 1) for e in by_name(run, "grafana", "Container").inputs["envs"] if "=" in e)


def test_the_client_redirects_exactly_to_the_apps_callback_at_its_public_url():
    client = by_name(build(), "grafana-oidc-client", "Client").inputs
    assert client["validRedirectUris"] == ["https://grafana.ceres.localhost/login/generic_oauth"]
    assert client["clientId"] == "grafana" and client["accessType"] == "CONFIDENTIAL"
    assert client["webOrigins"] == ["https://grafana.ceres.localhost"]


def test_extra_redirect_uris_from_the_spec_are_added():
    extra = "https://dashboards.ceres.localhost/login/generic_oauth"
    client = by_name(build(sso={"extra_redirect_uris": {"grafana": [extra]}}), "grafana-oidc-client", "Client").inputs
    assert client["validRedirectUris"] == ["https://grafana.ceres.localhost/login/generic_oauth", extra]


def test_the_client_secret_is_secret_everywhere():
    run = build()
    assert by_name(run, "grafana-oidc-client", "Client").inputs["clientSecret"] == "[secret]"
    uploads = by_name(run, "grafana", "Container").inputs["uploads"]
    assert [u["content"] for u in uploads if u["file"].endswith("oidc_client_secret")] == ["[secret]"]
    assert_no_plain_secrets(run)


def test_grafana_points_at_the_realm_and_makes_the_admin_group_admins():
    env = grafana_env(build())
    assert env["GF_AUTH_GENERIC_OAUTH_AUTH_URL"] == f"{ISSUER}/protocol/openid-connect/auth"
    assert env["GF_AUTH_GENERIC_OAUTH_TOKEN_URL"] == f"{INTERNAL}/protocol/openid-connect/token"
    assert env["GF_AUTH_GENERIC_OAUTH_API_URL"] == f"{INTERNAL}/protocol/openid-connect/userinfo"
    assert env["GF_AUTH_GENERIC_OAUTH_ROLE_ATTRIBUTE_PATH"].startswith("contains(groups[*], 'ceres-admins') && 'GrafanaAdmin'")
    assert "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET" not in env, "the secret goes in a file, not the environment"


def test_the_admin_group_follows_the_spec():
    run = build(sso={"admin_group": "ops"})
    assert "contains(groups[*], 'ops')" in grafana_env(run)["GF_AUTH_GENERIC_OAUTH_ROLE_ATTRIBUTE_PATH"]
    assert by_name(run, "keycloak-admins-group", "Group").inputs["name"] == "ops"


def test_groups_and_audience_claims_are_mapped_on_the_client():
    run = build()
    groups = by_name(run, "grafana-groups-claim", "GroupMembershipProtocolMapper").inputs
    assert groups["claimName"] == "groups" and groups["fullPath"] is False and groups["addToUserinfo"] is True
    assert by_name(run, "grafana-audience", "AudienceProtocolMapper").inputs["includedClientAudience"] == "grafana"


def test_extra_user_claims_become_mappers():
    run = build(claims=(UserClaim("username", "username"),))
    mapper = by_name(run, "grafana-username-claim", "UserPropertyProtocolMapper").inputs
    assert mapper["userProperty"] == "username" and mapper["claimName"] == "username"


def test_the_edge_lives_under_the_app_and_keycloak_resources_use_the_admin_provider():
    run = build()
    assert by_name(run, "sso-grafana", "OidcClientEdge").parent == by_name(run, "grafana", "Grafana").urn
    provider = by_name(run, "keycloak-admin", "keycloak").urn
    for resource in run.resources:
        if resource.type.startswith("keycloak:"):
            assert resource.provider == provider, resource.name


def test_the_realm_is_managed_only_once_keycloak_is_reachable():
    run = build()
    provider = by_name(run, "keycloak-admin", "keycloak")
    assert by_name(run, "keycloak", "Container").urn in provider.dependencies
    assert provider.inputs["url"] == "https://keycloak.ceres.localhost"
    # dev only: Caddy's internal CA is not in the deploying machine's trust store
    assert provider.inputs["tlsInsecureSkipVerify"] == "true"


def test_prod_verifies_keycloaks_certificate():
    provider = by_name(build(stack="prod"), "keycloak-admin", "keycloak")
    assert provider.inputs.get("tlsInsecureSkipVerify") in (None, "false")


def test_an_app_without_a_login_cannot_get_a_client():
    def program(spec, host):
        keycloak = Keycloak(spec, host, postgres=None)
        keycloak.open_realm(spec, reachable_after=[])
        OidcClientEdge(Grafana(spec, host, postgres=None, sso=False), keycloak)

    with pytest.raises(ValueError, match="built without its login"):
        run_components(program)
