"""Grafana under the recording engine: public URL, PostgreSQL or SQLite, secrets as files, and its
alerts to the chat through a Slack-type contact point."""

from __future__ import annotations

import pytest

from cli.offline import SECRET_MARK
from components.services.grafana import Grafana
from components.services.mattermost import Mattermost
from components.services.postgres import PostgreSQL
from tests.support import (
    assert_no_plain_secrets,
    assert_production_shape,
    build_named,
    by_name,
    of_type,
    run_components,
    served_without_proxy,
)


def build(with_postgres: bool = True):
    return build_named("grafana", lambda spec, host: Grafana(
        spec, host, postgres=PostgreSQL(spec.services.postgres, host, ("grafana",)) if with_postgres else None))


def envs(run) -> list[str]:
    return by_name(run, "grafana", "Container").inputs["envs"]


def networks(run) -> list[str]:
    return [n["name"] for n in by_name(run, "grafana", "Container").inputs["networksAdvanced"]]


def test_container_has_the_production_shape():
    run, built = build()
    spec = built["spec"].services.grafana
    container = assert_production_shape(run, "grafana", image=spec.image, memory=spec.memory_mb)
    assert container.inputs["healthcheck"]["tests"] == ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://localhost:3000/api/health"]
    assert container.inputs["volumes"] == [{"containerPath": "/var/lib/grafana", "volumeName": "ceres-dev-grafana-data"}]


def test_configured_for_its_public_url_behind_the_proxy():
    run, built = build()
    grafana = built["grafana"]
    assert grafana.url == "https://grafana.ceres.localhost"
    assert grafana.upstream == "grafana:3000" and grafana.internal_url == "http://grafana:3000"
    assert grafana.admin_username == "admin" and "GF_SECURITY_ADMIN_USER=admin" in envs(run)
    assert {"GF_SERVER_ROOT_URL=https://grafana.ceres.localhost/", "GF_SECURITY_COOKIE_SECURE=true",
            "GF_USERS_ALLOW_SIGN_UP=false", "GF_ANALYTICS_REPORTING_ENABLED=false"} <= set(envs(run))


def test_on_postgres_it_uses_its_own_database_edge_and_waits_for_it():
    run, _ = build()
    edge = by_name(run, "db-grafana", "DatabaseEdge")
    assert edge.parent == by_name(run, "grafana", "ceres:services:Grafana").urn
    assert {"GF_DATABASE_TYPE=postgres", "GF_DATABASE_HOST=postgres:5432", "GF_DATABASE_NAME=grafana",
            "GF_DATABASE_USER=grafana", "GF_DATABASE_PASSWORD__FILE=/etc/grafana/secrets/database_password"} <= set(envs(run))
    assert networks(run) == ["ceres-dev-edge", "ceres-dev-monitoring", "ceres-dev-data"]
    provisioning = by_name(run, "postgres-grafana-database", "Command")
    assert provisioning.urn in by_name(run, "grafana", "Container").dependencies


def test_without_postgres_it_falls_back_to_sqlite_off_the_data_network():
    run, _ = build(with_postgres=False)
    assert "GF_DATABASE_TYPE=sqlite3" in envs(run)
    assert not any(e.startswith("GF_DATABASE_HOST") for e in envs(run))
    assert not of_type(run, "DatabaseEdge")
    assert networks(run) == ["ceres-dev-edge", "ceres-dev-monitoring"]


def test_every_secret_is_a_secret_file_and_never_plain():
    run, _ = build()
    uploads = {u["file"]: u["content"] for u in by_name(run, "grafana", "Container").inputs["uploads"]}
    assert uploads == {
        "/etc/grafana/secrets/admin_password": "[secret]",
        "/etc/grafana/secrets/secret_key": "[secret]",
        "/etc/grafana/secrets/database_password": "[secret]",
    }
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE=/etc/grafana/secrets/admin_password" in envs(run)
    assert "GF_SECURITY_SECRET_KEY__FILE=/etc/grafana/secrets/secret_key" in envs(run)
    for password in of_type(run, "RandomPassword"):
        assert "result" in password.secret_outputs
    assert_no_plain_secrets(run)


# --- alerts to the chat (chat-grafana) --------------------------------------------------------------

API_URL = "https://grafana.ceres.localhost"


def build_with_chat(stack: str = "dev"):
    """Grafana with its alerts going to Mattermost; both served as if Caddy routed them."""
    services: dict = {}

    def program(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("grafana", "mattermost"))
        hub = Mattermost(spec, host, postgres=postgres)
        services["grafana"] = Grafana(spec, host, postgres=postgres, chat=hub)
        served_without_proxy(hub, services["grafana"])

    return run_components(program, stack=stack), services["grafana"]


@pytest.fixture(scope="module")
def with_chat():
    return build_with_chat()


def test_without_the_edge_no_provider_or_contact_point_is_made():
    run, built = build()
    assert built["grafana"].chat is None
    assert not of_type(run, "pulumi:providers:grafana") and not of_type(run, "ContactPoint")


def test_the_chat_edge_is_under_grafana_and_posts_to_the_alerts_channel_as_grafana(with_chat):
    run, grafana = with_chat
    edge = by_name(run, "chat-grafana", "ChatWebhookEdge")
    assert edge.parent == by_name(run, "grafana", "ceres:services:Grafana").urn
    assert grafana.chat.channel_name == "alerts" and grafana.chat.username == "Grafana"


def test_the_provider_signs_in_as_the_admin_at_the_api_url_with_a_secret(with_chat):
    run, _ = with_chat
    provider = by_name(run, "grafana-admin", "pulumi:providers:grafana")
    assert provider.inputs["url"] == API_URL
    assert provider.inputs["auth"] == SECRET_MARK
    # dev's certificates come from Caddy's internal CA, which the deploying machine does not trust.
    assert provider.inputs["insecureSkipVerify"] == "true"
    assert provider.parent == by_name(run, "chat-grafana", "ChatWebhookEdge").urn
    assert by_name(run, "grafana", "Container").urn in provider.dependencies, "Grafana runs before it is called"


def test_with_acme_certificates_the_provider_verifies_them():
    run, _ = build_with_chat(stack="prod")
    assert by_name(run, "grafana-admin", "pulumi:providers:grafana").inputs["insecureSkipVerify"] == "false"


def test_the_contact_point_is_slack_type_to_the_hook_with_the_url_secret(with_chat):
    run, _ = with_chat
    point = by_name(run, "grafana-chat-contact-point", "ContactPoint")
    assert point.inputs["slacks"] == [{"url": SECRET_MARK, "recipient": "alerts", "username": "Grafana"}]
    assert point.provider.startswith(by_name(run, "grafana-admin", "pulumi:providers:grafana").urn)
    assert point.parent == by_name(run, "chat-grafana", "ChatWebhookEdge").urn


def test_the_notification_policy_makes_it_the_default_grouped_by_alert(with_chat):
    run, _ = with_chat
    policy = by_name(run, "grafana-notification-policy", "NotificationPolicy")
    point = by_name(run, "grafana-chat-contact-point", "ContactPoint")
    assert policy.inputs["contactPoint"] == point.inputs["name"]
    assert point.urn in policy.dependencies
    assert policy.inputs["groupBies"] == ["alertname"]
    timings = (policy.inputs["groupWait"], policy.inputs["groupInterval"], policy.inputs["repeatInterval"])
    assert timings == ("30s", "5m", "4h")
    assert policy.provider.startswith(by_name(run, "grafana-admin", "pulumi:providers:grafana").urn)
    assert policy.parent == by_name(run, "chat-grafana", "ChatWebhookEdge").urn


def test_with_the_chat_no_secret_is_plain(with_chat):
    run, _ = with_chat
    assert_no_plain_secrets(run)


def test_without_a_proxy_serving_grafana_the_program_fails_instead_of_waiting():
    def program(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("mattermost",))
        hub = Mattermost(spec, host, postgres=postgres)
        served_without_proxy(hub)
        Grafana(spec, host, postgres=None, chat=hub)

    with pytest.raises(RuntimeError, match="grafana: its API is called at its public URL, but no proxy serves it"):
        run_components(program)
