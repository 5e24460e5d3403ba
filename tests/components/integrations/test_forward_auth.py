"""The sso-proxy edge under the recording engine: oauth2-proxy's Keycloak client, its exact
callbacks on the gated hosts, its secret, and the claims keycloak-oidc needs."""

from __future__ import annotations


import pytest

from cli.offline import SECRET_MARK
from components.services.alertmanager import Alertmanager
from components.services.caddy import Caddy
from components.services.keycloak import Keycloak
from components.services.oauth2_proxy import OAuth2Proxy
from components.services.prometheus import Prometheus
from components.services.uptime_kuma import UptimeKuma
from tests.support import assert_no_plain_secrets, by_name, of_type, run_components


def build(stack: str = "dev", alertmanager_routed: bool = True, register: bool = True):
    built: dict = {}

    def program(spec, host):
        keycloak = Keycloak(spec, host, postgres=None)
        alertmanager = Alertmanager(spec, host)
        uis = [Prometheus(spec, host, alertmanager=alertmanager), UptimeKuma(spec, host)]
        if alertmanager_routed:
            uis.append(alertmanager)
        proxy = OAuth2Proxy(spec, host, keycloak=keycloak)
        caddy = Caddy(spec, host, routes=[keycloak, *uis], gate=proxy)
        keycloak.open_realm(spec, reachable_after=[caddy.container.container])
        if register:
            caddy.forward_auth.register_client(keycloak)
        built.update(keycloak=keycloak, proxy=proxy, caddy=caddy, edge=caddy.forward_auth)

    return run_components(program, stack=stack), built


@pytest.fixture(scope="module")
def dev():
    return build()


def client(run):
    return by_name(run, "oauth2_proxy-oidc-client", "openid/client:Client")


def proxy_env(run) -> dict[str, str]:
    envs = by_name(run, "oauth2_proxy", "Container").inputs["envs"]
    return dict(e.split("=", 1) for e in envs if e != SECRET_MARK)


def test_redirect_uris_are_exactly_each_gated_hosts_callback(dev) -> None:
    run, built = dev
    expected = [
        "https://prometheus.ceres.localhost/oauth2/callback",
        "https://status.ceres.localhost/oauth2/callback",
        "https://alertmanager.ceres.localhost/oauth2/callback",
    ]
    assert client(run).inputs["validRedirectUris"] == expected
    assert list(built["edge"].redirect_uris) == expected
    assert [f"https://{route.site_host}/oauth2/callback" for route in built["caddy"].routes if route.gate] == expected


def test_a_ui_that_is_not_routed_gets_no_callback() -> None:
    run, _ = build(alertmanager_routed=False)
    assert client(run).inputs["validRedirectUris"] == [
        "https://prometheus.ceres.localhost/oauth2/callback",
        "https://status.ceres.localhost/oauth2/callback",
    ]


def test_prod_callbacks_are_on_the_prod_domain() -> None:
    run, _ = build("prod")
    assert client(run).inputs["validRedirectUris"][0] == "https://prometheus.ceres.example.com/oauth2/callback"


def test_the_client_is_oauth2_proxys_with_its_secret_kept_secret(dev) -> None:
    run, _ = dev
    inputs = client(run).inputs
    assert inputs["clientId"] == "oauth2-proxy" == proxy_env(run)["OAUTH2_PROXY_CLIENT_ID"]
    assert inputs["clientSecret"] == SECRET_MARK
    # The very secret oauth2-proxy's container gets, not a second one.
    assert by_name(run, "oauth2-proxy-client-secret", "RandomPassword").urn in client(run).dependencies
    assert inputs["accessType"] == "CONFIDENTIAL"
    assert inputs["standardFlowEnabled"] is True and inputs["directAccessGrantsEnabled"] is False
    assert inputs["pkceCodeChallengeMethod"] == "S256" == proxy_env(run)["OAUTH2_PROXY_CODE_CHALLENGE_METHOD"]
    assert_no_plain_secrets(run)


def test_the_client_lives_under_the_edge_in_the_realm_through_the_admin_provider(dev) -> None:
    run, _ = dev
    edge = by_name(run, "sso-proxy", "ForwardAuthEdge")
    assert edge.parent == by_name(run, "caddy", "Caddy").urn
    provider = by_name(run, "keycloak-admin", "pulumi:providers:keycloak").urn
    realm = by_name(run, "keycloak-realm", "Realm").urn
    for name in ("oauth2_proxy-oidc-client", "oauth2_proxy-groups-claim", "oauth2_proxy-audience"):
        resource = by_name(run, name)
        assert resource.parent == edge.urn, name
        assert resource.provider == provider, name
        assert realm in resource.dependencies, name


def test_tokens_carry_the_audience_and_the_groups_the_gate_checks(dev) -> None:
    run, _ = dev
    audience = by_name(run, "oauth2_proxy-audience", "AudienceProtocolMapper").inputs
    # keycloak-oidc refuses tokens whose aud does not name its client id.
    assert audience["includedClientAudience"] == "oauth2-proxy"
    assert audience["addToIdToken"] is True and audience["addToAccessToken"] is True
    groups = by_name(run, "oauth2_proxy-groups-claim", "GroupMembershipProtocolMapper").inputs
    assert groups["claimName"] == proxy_env(run)["OAUTH2_PROXY_OIDC_GROUPS_CLAIM"] == "groups"
    # Plain names ("ceres-admins", not "/ceres-admins"), as the allowed group is written.
    assert groups["fullPath"] is False and groups["addToIdToken"] is True
    admins = by_name(run, "keycloak-admins-group", "Group").inputs["name"]
    assert proxy_env(run)["OAUTH2_PROXY_ALLOWED_GROUPS"] == admins == "ceres-admins"
    for mapper in ("oauth2_proxy-audience", "oauth2_proxy-groups-claim"):
        assert client(run).urn in by_name(run, mapper).dependencies


def test_the_edge_registers_nothing_until_asked() -> None:
    run, built = build(register=False)
    assert built["edge"].client is None
    assert not of_type(run, "openid/client:Client")


def test_register_client_fails_before_the_realm_is_open_and_when_called_twice() -> None:
    def before_realm(spec, host):
        keycloak = Keycloak(spec, host, postgres=None)
        proxy = OAuth2Proxy(spec, host, keycloak=keycloak)
        caddy = Caddy(spec, host, routes=[Prometheus(spec, host)], gate=proxy)
        caddy.forward_auth.register_client(keycloak)

    with pytest.raises(Exception, match="open the realm first"):
        run_components(before_realm)
    _, built = build()
    with pytest.raises(ValueError, match="already registered"):
        built["edge"].register_client(built["keycloak"])
