"""Mattermost's sign-in settings as environment entries, against the settings the pinned 10.11 ESR has.

No Mattermost runs here. Checked against mattermost/server model/config.go (10.11): GitLabSettings
and OpenIdSettings are both `SSOSettings` {Enable, Secret, Id, Scope, AuthEndpoint, TokenEndpoint,
UserAPIEndpoint, DiscoveryEndpoint, ButtonText, ButtonColor}, read from MM_<SECTION>_<KEY> with no
`_FILE` variant (config/environment.go), and the redirect Mattermost sends is always
{SiteURL}/signup/<service>/complete (app/oauth.go GetAuthorizationCode).
"""

from __future__ import annotations

import pytest

from components.config import mattermost as config

SSO_SETTINGS = {"Enable", "Secret", "Id", "Scope", "AuthEndpoint", "TokenEndpoint", "UserAPIEndpoint",
                "DiscoveryEndpoint", "ButtonText", "ButtonColor"}
PUBLIC = "https://keycloak.example.com/realms/ceres/protocol/openid-connect"
INTERNAL = "http://keycloak:8080/realms/ceres"


def settings(edition: str) -> config.SsoSettings:
    return config.SsoSettings(
        edition=edition,
        client_id="mattermost",
        auth_endpoint=f"{PUBLIC}/auth",
        token_endpoint=f"{INTERNAL}/protocol/openid-connect/token",
        userinfo_endpoint=f"{INTERNAL}/protocol/openid-connect/userinfo",
        discovery_endpoint=f"{INTERNAL}/.well-known/openid-configuration",
    )


def as_env(edition: str) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in config.sso_environment(settings(edition)))


@pytest.mark.parametrize("edition, section", [("team", "GitLabSettings"), ("enterprise", "OpenIdSettings")])
def test_every_key_is_a_documented_sso_setting_of_its_section(edition, section):
    allowed = {f"MM_{section.upper()}_{key.upper()}" for key in SSO_SETTINGS}
    env = as_env(edition)
    assert set(env) <= allowed, set(env) - allowed
    assert config.sso_secret_variable(edition) in allowed
    assert config.sso_secret_variable(edition) not in env, "the secret is added apart, as a secret"


def test_team_edition_points_the_gitlab_provider_at_keycloak():
    env = as_env("team")
    assert env == {
        "MM_GITLABSETTINGS_ENABLE": "true",
        "MM_GITLABSETTINGS_ID": "mattermost",
        "MM_GITLABSETTINGS_SCOPE": "openid profile email",
        "MM_GITLABSETTINGS_AUTHENDPOINT": f"{PUBLIC}/auth",
        "MM_GITLABSETTINGS_TOKENENDPOINT": f"{INTERNAL}/protocol/openid-connect/token",
        "MM_GITLABSETTINGS_USERAPIENDPOINT": f"{INTERNAL}/protocol/openid-connect/userinfo",
    }


def test_licensed_editions_use_openid_discovery():
    env = as_env("enterprise")
    assert env["MM_OPENIDSETTINGS_ENABLE"] == "true"
    assert env["MM_OPENIDSETTINGS_DISCOVERYENDPOINT"] == f"{INTERNAL}/.well-known/openid-configuration"
    assert not any(key.startswith("MM_GITLABSETTINGS_") for key in env)


def test_callbacks_are_the_routes_mattermost_redirects_to():
    assert config.GITLAB_CALLBACKS[0] == "/signup/gitlab/complete"
    assert config.OPENID_CALLBACKS == ("/signup/openid/complete",)
