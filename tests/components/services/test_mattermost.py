"""Mattermost as the recording engine sees it: one container shaped for production, its own
database, secrets only as secrets, and two bootstrap steps that run after the container."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.docker_host import PROBE
from components.services.mattermost import Mattermost
from components.services.postgres import PostgreSQL
from stacks.tiers import BASE
from tests.support import by_name, of_type, run_components


@pytest.fixture(scope="module")
def built():
    services: dict[str, Mattermost] = {}

    def build(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("mattermost",))
        services["mattermost"] = Mattermost(spec, host, postgres=postgres)

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


def test_joins_the_edge_for_caddy_and_the_data_network_for_postgres_only(built):
    run, mattermost = built
    networks = {n["name"] for n in container(run).inputs["networksAdvanced"]}
    assert networks == {"ceres-dev-edge", "ceres-dev-data"}
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
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), f"{resource.name} carries a secret in plain text"


def test_bootstrap_runs_in_the_container_as_its_user_with_the_password_from_env(built):
    run, _ = built
    setup = by_name(run, "mattermost-bootstrap", "Command")
    assert setup.inputs["create"] == "docker exec -i -u mattermost -e MM_ADMIN_PASSWORD ceres-dev-mattermost sh -s"
    assert setup.inputs["environment"]["MM_ADMIN_PASSWORD"] == SECRET_MARK
    assert container(run).urn in setup.dependencies
    script = setup.inputs["stdin"]
    assert "TEAM=ceres" in script and "CHANNELS='dev projects ops alerts files'" in script


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
