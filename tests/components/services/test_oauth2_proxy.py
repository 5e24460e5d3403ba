"""oauth2-proxy under the recording engine: Keycloak OIDC without discovery, secrets, probe healthcheck.

There is no oauth2-proxy binary in Debian or PyPI to run here, so the environment is checked
against oauth2-proxy's documented options (docs/docs/configuration/overview.md and the
`cfg`/`env` tags in pkg/apis/options, v7.x): every variable must be a documented flag in its
`OAUTH2_PROXY_<FLAG>` form (plural for list flags: COOKIE_DOMAINS, WHITELIST_DOMAINS,
EMAIL_DOMAINS, UPSTREAMS, ALLOWED_GROUPS; comma-separated values, split by viper's decoder).
The keycloak-oidc group flag is `--allowed-group` (cfg `allowed_groups`, v7.12
pkg/apis/options/legacy_options.go), read from the `--oidc-groups-claim` claim.
"""

from __future__ import annotations


import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.docker_host import PROBE
from components.services.keycloak import Keycloak
from components.services.oauth2_proxy import OAuth2Proxy
from stacks.tiers import BASE
from tests.support import assert_no_plain_secrets, by_name, run_components

REALM = "ceres"  # the default realm (stacks/tiers.py)

DOCUMENTED_VARIABLES = {
    "OAUTH2_PROXY_PROVIDER", "OAUTH2_PROXY_OIDC_ISSUER_URL", "OAUTH2_PROXY_SKIP_OIDC_DISCOVERY",
    "OAUTH2_PROXY_LOGIN_URL", "OAUTH2_PROXY_REDEEM_URL", "OAUTH2_PROXY_OIDC_JWKS_URL",
    "OAUTH2_PROXY_PROFILE_URL", "OAUTH2_PROXY_CLIENT_ID", "OAUTH2_PROXY_CLIENT_SECRET",
    "OAUTH2_PROXY_COOKIE_SECRET", "OAUTH2_PROXY_CODE_CHALLENGE_METHOD", "OAUTH2_PROXY_COOKIE_DOMAINS",
    "OAUTH2_PROXY_WHITELIST_DOMAINS", "OAUTH2_PROXY_COOKIE_SECURE", "OAUTH2_PROXY_EMAIL_DOMAINS",
    "OAUTH2_PROXY_REVERSE_PROXY", "OAUTH2_PROXY_SET_XAUTHREQUEST", "OAUTH2_PROXY_UPSTREAMS",
    "OAUTH2_PROXY_HTTP_ADDRESS", "OAUTH2_PROXY_SILENCE_PING_LOGGING",
    "OAUTH2_PROXY_OIDC_GROUPS_CLAIM", "OAUTH2_PROXY_ALLOWED_GROUPS", "OAUTH2_PROXY_SKIP_PROVIDER_BUTTON",
}
GATED_HOSTS = ["prometheus.ceres.localhost", "alertmanager.ceres.localhost", "status.ceres.localhost"]


def build(stack: str = "dev", **settings):
    built: dict = {}

    def program(spec, host):
        built["keycloak"] = Keycloak(spec, host, postgres=None)
        built["proxy"] = OAuth2Proxy(spec, host, keycloak=built["keycloak"])

    return run_components(program, stack=stack, **settings), built["proxy"]


@pytest.fixture(scope="module")
def dev():
    return build()


def container(run):
    return by_name(run, "oauth2_proxy", "Container")


def env(run) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container(run).inputs["envs"] if e != SECRET_MARK)


def test_runs_the_pinned_image_in_production_shape(dev) -> None:
    run, _ = dev
    image = by_name(run, "oauth2_proxy-image", "RemoteImage")
    assert image.inputs["name"] == BASE["services"]["oauth2_proxy"]["image"]
    proxy = container(run)
    assert image.urn in proxy.dependencies
    assert proxy.inputs["restart"] == "unless-stopped" and proxy.inputs["wait"] is True
    assert proxy.inputs["memory"] == BASE["services"]["oauth2_proxy"]["memory_mb"]
    assert not proxy.inputs.get("ports"), "only Caddy publishes ports"
    assert [n["name"] for n in proxy.inputs["networksAdvanced"]] == ["ceres-dev-edge"]


def test_healthcheck_uses_the_probe_on_ping_because_the_image_is_distroless(dev) -> None:
    run, _ = dev
    proxy = container(run)
    assert proxy.inputs["healthcheck"]["tests"] == ["CMD", PROBE, "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:4180/ping"]
    # The probe busybox is mounted read-only and filled before the container starts.
    assert {"volumeName": "ceres-dev-probe", "containerPath": "/ceres-probe", "readOnly": True} in proxy.inputs["volumes"]
    assert by_name(run, "local-probe-fill", "Container").urn in proxy.dependencies


def test_speaks_keycloak_oidc_to_the_ceres_realm_without_startup_discovery(dev) -> None:
    run, _ = dev
    values = env(run)
    public = f"https://keycloak.ceres.localhost/realms/{REALM}"
    internal = f"http://keycloak:8080/realms/{REALM}"
    assert values["OAUTH2_PROXY_PROVIDER"] == "keycloak-oidc"
    assert values["OAUTH2_PROXY_OIDC_ISSUER_URL"] == public
    assert values["OAUTH2_PROXY_SKIP_OIDC_DISCOVERY"] == "true"
    # The browser is sent to the public login page; the back-channel stays inside Docker.
    assert values["OAUTH2_PROXY_LOGIN_URL"] == f"{public}/protocol/openid-connect/auth"
    assert values["OAUTH2_PROXY_REDEEM_URL"] == f"{internal}/protocol/openid-connect/token"
    assert values["OAUTH2_PROXY_OIDC_JWKS_URL"] == f"{internal}/protocol/openid-connect/certs"
    assert values["OAUTH2_PROXY_PROFILE_URL"] == f"{internal}/protocol/openid-connect/userinfo"
    assert values["OAUTH2_PROXY_CLIENT_ID"] == "oauth2-proxy"
    assert values["OAUTH2_PROXY_CODE_CHALLENGE_METHOD"] == "S256"


def test_does_not_wait_for_keycloak_to_start(dev) -> None:
    run, _ = dev
    keycloak = by_name(run, "keycloak", "Container")
    assert keycloak.urn not in container(run).dependencies


def test_the_session_cookie_and_redirects_stay_on_the_gated_hosts(dev) -> None:
    # Deliberately not `.ceres.localhost` (the domain-wide cookie this replaced): every other
    # app under the domain would receive the admin session cookie.
    run, proxy = dev
    values = env(run)
    assert values["OAUTH2_PROXY_COOKIE_DOMAINS"].split(",") == GATED_HOSTS == proxy.hosts
    assert values["OAUTH2_PROXY_WHITELIST_DOMAINS"].split(",") == GATED_HOSTS
    assert values["OAUTH2_PROXY_COOKIE_SECURE"] == "true"


def test_a_disabled_ui_is_not_among_the_gated_hosts() -> None:
    run, proxy = build(services={"alertmanager": {"enabled": False}})
    assert env(run)["OAUTH2_PROXY_COOKIE_DOMAINS"] == "prometheus.ceres.localhost,status.ceres.localhost"
    assert proxy.hosts == ["prometheus.ceres.localhost", "status.ceres.localhost"]


def test_only_the_admin_group_passes_the_gate(dev) -> None:
    run, _ = dev
    values = env(run)
    assert values["OAUTH2_PROXY_ALLOWED_GROUPS"] == BASE["sso"]["admin_group"] == "ceres-admins"
    assert values["OAUTH2_PROXY_OIDC_GROUPS_CLAIM"] == "groups"
    assert values["OAUTH2_PROXY_EMAIL_DOMAINS"] == "*"
    # The 401 redirect to /oauth2/sign_in goes straight on to Keycloak.
    assert values["OAUTH2_PROXY_SKIP_PROVIDER_BUTTON"] == "true"


def test_realm_and_admin_group_come_from_the_sso_settings() -> None:
    run, _ = build(sso={"realm": "acme", "admin_group": "ops-admins"})
    values = env(run)
    assert values["OAUTH2_PROXY_OIDC_ISSUER_URL"] == "https://keycloak.ceres.localhost/realms/acme"
    assert values["OAUTH2_PROXY_REDEEM_URL"] == "http://keycloak:8080/realms/acme/protocol/openid-connect/token"
    assert values["OAUTH2_PROXY_ALLOWED_GROUPS"] == "ops-admins"


def test_runs_as_a_forward_auth_backend_behind_caddy(dev) -> None:
    run, proxy = dev
    values = env(run)
    assert values["OAUTH2_PROXY_REVERSE_PROXY"] == "true"
    assert values["OAUTH2_PROXY_SET_XAUTHREQUEST"] == "true"
    assert values["OAUTH2_PROXY_HTTP_ADDRESS"] == "0.0.0.0:4180"
    assert values["OAUTH2_PROXY_UPSTREAMS"] == "static://202"
    assert proxy.upstream == "oauth2-proxy:4180"


def test_secrets_are_generated_and_reach_the_container_only_as_secrets(dev) -> None:
    run, proxy = dev
    envs = container(run).inputs["envs"]
    assert envs.count(SECRET_MARK) == 2  # client secret and cookie secret
    assert "OAUTH2_PROXY_CLIENT_SECRET" not in env(run) and "OAUTH2_PROXY_COOKIE_SECRET" not in env(run)
    assert by_name(run, "oauth2-proxy-cookie-secret", "RandomPassword").inputs["length"] == 32
    assert _sync_await(proxy.client_secret.is_secret())
    assert proxy.client_id == "oauth2-proxy"
    assert_no_plain_secrets(run)


def test_every_variable_is_a_documented_option(dev) -> None:
    run, _ = dev
    names = {e.split("=", 1)[0] for e in container(run).inputs["envs"] if e != SECRET_MARK}
    assert names <= DOCUMENTED_VARIABLES, names - DOCUMENTED_VARIABLES


def test_prod_uses_the_prod_domain() -> None:
    run, _ = build("prod")
    values = env(run)
    assert values["OAUTH2_PROXY_OIDC_ISSUER_URL"] == f"https://keycloak.ceres.example.com/realms/{REALM}"
    assert values["OAUTH2_PROXY_COOKIE_DOMAINS"] == "prometheus.ceres.example.com,alertmanager.ceres.example.com,status.ceres.example.com"
