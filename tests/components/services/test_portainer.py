"""Portainer CE under the recording engine: the admin password file, the socket, the probe healthcheck."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.docker_host import PROBE
from components.services.portainer import ADMIN_PASSWORD_FILE, Portainer
from stacks.tiers import BASE
from tests.support import by_name, run_components


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
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), resource.name


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
