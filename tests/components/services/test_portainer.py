"""Portainer CE under the recording engine: the admin password file, the socket, the probe healthcheck."""

from __future__ import annotations

import ast
import json
import re

import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.docker_host import PROBE
from components.integrations.oidc import OidcClientEdge
from components.services.keycloak import Keycloak
from components.services.portainer import ADMIN_PASSWORD_FILE, Portainer
from stacks.tiers import BASE
from tests.support import assert_no_plain_secrets, assert_oidc_client, by_name, run_components


def build(stack: str = "dev"):
    built: dict[str, Portainer] = {}

    def program(spec, host):
        built["portainer"] = Portainer(spec, host)

    return run_components(program, stack=stack), built["portainer"]


@pytest.fixture(scope="module")
def dev():
    return build()


def container(run):
    return by_name(run, "portainer", "Container")


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_runs_the_pinned_ce_image_in_production_shape(dev) -> None:
    run, _ = dev
    image = by_name(run, "portainer-image", "RemoteImage")
    assert image.inputs["name"] == BASE["services"]["portainer"]["image"]
    assert image.inputs["name"].startswith("portainer/portainer-ce:")
    portainer = container(run)
    assert image.urn in portainer.dependencies
    assert portainer.inputs["restart"] == "unless-stopped" and portainer.inputs["wait"] is True
    assert portainer.inputs["memory"] == BASE["services"]["portainer"]["memory_mb"]
    assert not portainer.inputs.get("ports"), "only Caddy publishes ports"
    assert [n["name"] for n in portainer.inputs["networksAdvanced"]] == ["ceres-dev-edge"]


def test_keeps_its_data_in_a_volume_and_reads_the_docker_socket(dev) -> None:
    run, _ = dev
    volumes = container(run).inputs["volumes"]
    assert {"volumeName": "ceres-dev-portainer-data", "containerPath": "/data"} in volumes
    assert {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True} in volumes
    command = container(run).inputs["command"]
    assert flag(command, "-H") == "unix:///var/run/docker.sock", "the local engine is registered at first start"


def test_admin_is_created_from_a_secret_password_file_without_any_click(dev) -> None:
    run, portainer = dev
    command = container(run).inputs["command"]
    assert flag(command, "--admin-password-file") == ADMIN_PASSWORD_FILE
    assert "--admin-password" not in command, "the hash flag and the file flag exclude each other"
    uploads = container(run).inputs["uploads"]
    assert uploads == [{"file": ADMIN_PASSWORD_FILE, "content": SECRET_MARK}]
    assert portainer.admin_username == "admin"
    assert _sync_await(portainer.admin_password.is_secret())
    assert_no_plain_secrets(run)


def test_serves_plain_http_to_caddy_and_trusts_its_public_origin(dev) -> None:
    run, portainer = dev
    command = container(run).inputs["command"]
    assert "--http-enabled" in command
    assert flag(command, "--trusted-origins") == "portainer.ceres.localhost"
    assert portainer.url == "https://portainer.ceres.localhost"
    assert portainer.upstream == "portainer:9000"


def test_healthcheck_uses_the_probe_because_the_image_has_no_shell(dev) -> None:
    run, _ = dev
    portainer = container(run)
    assert portainer.inputs["healthcheck"]["tests"] == [
        "CMD", PROBE, "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9000/api/system/status"]
    assert by_name(run, "local-probe-fill", "Container").urn in portainer.dependencies


def test_prod_trusts_the_prod_origin() -> None:
    run, _ = build("prod")
    assert flag(container(run).inputs["command"], "--trusted-origins") == "portainer.ceres.example.com"


# --- single sign-on (sso-portainer) ----------------------------------------------------------------

def build_with_sso(stack: str = "dev"):
    """Keycloak with its realm, Portainer signing in through it, and the edge between them."""
    built: dict[str, Portainer] = {}

    def program(spec, host):
        keycloak = Keycloak(spec, host, postgres=None)
        built["portainer"] = Portainer(spec, host, sso=True)
        keycloak.open_realm(spec, reachable_after=[])
        OidcClientEdge(built["portainer"], keycloak)

    return run_components(program, stack=stack), built["portainer"]


@pytest.fixture(scope="module")
def dev_sso():
    return build_with_sso()


def applied_settings(run) -> dict:
    """The settings the step's script would apply, read back from its embedded JSON."""
    script = by_name(run, "portainer-sso", "Command").inputs["stdin"]
    return json.loads(ast.literal_eval(re.search(r"^CONFIG = json\.loads\((.*)\)$", script, re.M).group(1)))


def test_without_the_edge_there_is_no_sign_in_step(dev) -> None:
    run, portainer = dev
    assert portainer.oidc is None
    assert not [r for r in run.resources if r.name == "portainer-sso"]


def test_the_client_redirects_exactly_to_portainers_base_url(dev_sso) -> None:
    run, _ = dev_sso
    assert_oidc_client(run, "portainer", ["https://portainer.ceres.localhost/"])
    assert applied_settings(run)["oauth"]["RedirectURI"] == "https://portainer.ceres.localhost/"


def test_portainer_points_at_the_realm(dev_sso) -> None:
    run, _ = dev_sso
    oauth = applied_settings(run)["oauth"]
    # The browser goes to the public issuer; Portainer's own calls stay on the Docker network.
    assert oauth["AuthorizationURI"] == "https://keycloak.ceres.localhost/realms/ceres/protocol/openid-connect/auth"
    assert oauth["AccessTokenURI"] == "http://keycloak:8080/realms/ceres/protocol/openid-connect/token"
    assert oauth["ResourceURI"] == "http://keycloak:8080/realms/ceres/protocol/openid-connect/userinfo"
    assert oauth["LogoutURI"].startswith("https://keycloak.ceres.localhost/realms/ceres/protocol/openid-connect/logout?")
    assert oauth["ClientID"] == "portainer" and oauth["UserIdentifier"] == "preferred_username"


def test_the_step_runs_on_the_deploying_machine_after_the_client_with_secrets_from_env(dev_sso) -> None:
    run, _ = dev_sso
    step = by_name(run, "portainer-sso", "Command")
    assert step.inputs["create"] == "python3 -"
    assert step.inputs["environment"] == {
        "CERES_PORTAINER_ADMIN_PASSWORD": SECRET_MARK,
        "CERES_OIDC_CLIENT_SECRET": SECRET_MARK,
    }
    assert container(run).urn in step.dependencies
    assert by_name(run, "portainer-oidc-client", "Client").urn in step.dependencies
    assert step.parent == by_name(run, "portainer", "ceres:services:Portainer").urn
    assert "stdout" in step.secret_outputs
    assert applied_settings(run)["url"] == "https://portainer.ceres.localhost"


def test_the_client_secret_is_secret_everywhere(dev_sso) -> None:
    run, _ = dev_sso
    assert_no_plain_secrets(run)


def test_no_group_becomes_portainer_admin_in_ce(dev_sso) -> None:
    run, portainer = dev_sso
    oauth = applied_settings(run)["oauth"]
    assert not {"TeamMemberships", "OAuthClaimMappings", "AdminAutoPopulate"} & set(oauth)
    assert oauth["OAuthAutoCreateUsers"] is True and oauth["DefaultTeamID"] == 0
    assert "ceres-admins" not in by_name(run, "portainer-sso", "Command").inputs["stdin"]
    assert portainer.admin_username == "admin", "the initial admin stays the administrator"


def test_dev_skips_tls_verification_for_the_internal_ca_and_prod_verifies() -> None:
    assert applied_settings(build_with_sso("dev")[0])["verify_tls"] is False
    prod = applied_settings(build_with_sso("prod")[0])
    assert prod["verify_tls"] is True and prod["url"] == "https://portainer.ceres.example.com"
