"""Grafana under the recording engine: public URL, PostgreSQL or SQLite, secrets as files, and its
alerts to the chat through a Slack-type contact point."""

from __future__ import annotations

import json

import pytest

from cli.offline import SECRET_MARK
from components.services.grafana import Grafana
from components.services.loki import Loki
from components.services.mattermost import Mattermost
from components.services.postgres import PostgreSQL
from components.services.prometheus import Prometheus
from components.services.tempo import Tempo
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
        "/etc/grafana/secrets/metrics_password": "[secret]",
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
    # One provider for the whole service (contact point, datasources, dashboards).
    assert provider.parent == by_name(run, "grafana", "ceres:services:Grafana").urn
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


# --- metrics and traces -----------------------------------------------------------------------------


def test_metrics_are_served_on_the_http_port_behind_basic_auth():
    run, built = build()
    grafana = built["grafana"]
    assert grafana.metrics_target == "grafana:3000"
    assert {"GF_METRICS_BASIC_AUTH_USERNAME=prometheus",
            "GF_METRICS_BASIC_AUTH_PASSWORD__FILE=/etc/grafana/secrets/metrics_password"} <= set(envs(run))
    job = grafana.scrape_job()
    assert (job.name, job.targets, job.basic_auth.username) == ("grafana", ("grafana:3000",), "prometheus")
    assert job.basic_auth.password is grafana.metrics_password


def test_without_a_collector_grafana_sends_no_traces():
    run, built = build()
    assert built["grafana"].traced is False
    assert not any(e.startswith("GF_TRACING_") for e in envs(run))


def test_with_a_collector_grafana_sends_its_spans_over_otlp_grpc():
    run, built = build_named("grafana", lambda spec, host: Grafana(spec, host, postgres=None, otlp_endpoint="otel-collector:4317"))
    assert built["grafana"].traced is True
    assert {"GF_TRACING_OPENTELEMETRY_OTLP_ADDRESS=otel-collector:4317",
            "GF_TRACING_OPENTELEMETRY_OTLP_PROPAGATION=w3c"} <= set(envs(run))


def test_a_collector_address_that_is_not_host_port_fails():
    with pytest.raises(Exception, match="otlp_endpoint='http://otel-collector:4317'"):
        build_named("grafana", lambda spec, host: Grafana(spec, host, postgres=None, otlp_endpoint="http://otel-collector:4317"))


# --- datasources and dashboards -----------------------------------------------------------------------


def build_observed(*backends: str, chat: bool = False):
    """Grafana given the backends named (prometheus, loki, tempo), served as if Caddy routed it."""
    services: dict = {}

    def program(spec, host):
        made = {
            "prometheus": lambda: Prometheus(spec, host),
            "loki": lambda: Loki(spec, host),
            "tempo": lambda: Tempo(spec, host),
        }
        given = {name: made[name]() for name in backends}
        hub = None
        if chat:
            hub = Mattermost(spec, host, postgres=PostgreSQL(spec.services.postgres, host, ("mattermost",)))
            served_without_proxy(hub)
        services["grafana"] = Grafana(spec, host, postgres=None, chat=hub, **given)
        served_without_proxy(services["grafana"])

    return run_components(program), services["grafana"]


@pytest.fixture(scope="module")
def observed():
    return build_observed("prometheus", "loki", "tempo", chat=True)


def json_data(run, kind: str) -> dict:
    return json.loads(by_name(run, f"grafana-datasource-{kind}", "DataSource").inputs["jsonDataEncoded"])


def test_each_backend_is_a_datasource_edge_under_grafana_with_a_fixed_uid_at_its_internal_url(observed):
    run, grafana = observed
    service = by_name(run, "grafana", "ceres:services:Grafana").urn
    expected = {"prometheus": "http://prometheus:9090", "loki": "http://loki:3100", "tempo": "http://tempo:3200"}
    for kind, url in expected.items():
        edge = by_name(run, f"datasource-{kind}", "DatasourceEdge")
        assert edge.parent == service
        source = by_name(run, f"grafana-datasource-{kind}", "DataSource")
        assert source.parent == edge.urn
        assert (source.inputs["type"], source.inputs["uid"], source.inputs["url"]) == (kind, f"ceres-{kind}", url)
    assert [edge.edge.id for edge in grafana.datasources] == ["datasource-prometheus", "datasource-loki", "datasource-tempo"]
    assert by_name(run, "grafana-datasource-prometheus", "DataSource").inputs["isDefault"] is True


def test_traces_logs_and_metrics_link_to_each_other_by_uid(observed):
    run, _ = observed
    loki, tempo, prometheus = json_data(run, "loki"), json_data(run, "tempo"), json_data(run, "prometheus")
    [derived] = loki["derivedFields"]
    assert derived["datasourceUid"] == "ceres-tempo" and "trace_id" in derived["matcherRegex"]
    assert tempo["tracesToLogsV2"]["datasourceUid"] == "ceres-loki"
    assert tempo["tracesToLogsV2"]["filterByTraceID"] is True
    assert tempo["tracesToLogsV2"]["tags"] == [{"key": "service.name", "value": "service"}]
    assert tempo["serviceMap"] == {"datasourceUid": "ceres-prometheus"}
    assert {d["datasourceUid"] for d in prometheus["exemplarTraceIdDestinations"]} == {"ceres-tempo"}


def test_with_prometheus_alone_no_link_points_at_a_missing_datasource():
    run, grafana = build_observed("prometheus")
    assert [edge.edge.id for edge in grafana.datasources] == ["datasource-prometheus"]
    assert "exemplarTraceIdDestinations" not in json_data(run, "prometheus")


def test_every_api_resource_uses_the_one_admin_provider_which_waits_for_the_container(observed):
    run, _ = observed
    [provider] = of_type(run, "pulumi:providers:grafana")
    assert by_name(run, "grafana", "Container").urn in provider.dependencies
    api_resources = [r for r in run.resources if r.type.startswith("grafana:")]
    kinds = {r.type.rsplit(":", 1)[-1] for r in api_resources}
    assert {"DataSource", "Folder", "Dashboard", "ContactPoint", "NotificationPolicy"} <= kinds
    for resource in api_resources:
        assert resource.provider.startswith(provider.urn), resource.name


def test_dashboards_sit_in_the_ceres_folder_and_wait_for_the_datasources(observed):
    run, grafana = observed
    folder = by_name(run, "grafana-folder-ceres", "Folder")
    assert (folder.inputs["title"], folder.inputs["uid"]) == ("CERES", "ceres")
    dashboards = of_type(run, "oss/dashboard:Dashboard")
    assert {"ceres-service-health", "ceres-integrations"} <= set(grafana.dashboards)
    assert len(dashboards) == len(grafana.dashboards)
    datasources = {by_name(run, f"grafana-datasource-{kind}", "DataSource").urn for kind in ("prometheus", "loki", "tempo")}
    for dashboard in dashboards:
        assert dashboard.inputs["folder"] == "ceres" and dashboard.inputs["overwrite"] is True
        assert datasources <= set(dashboard.dependencies)
        assert json.loads(dashboard.inputs["configJson"])["uid"] == dashboard.name.removeprefix("grafana-dashboard-")


def test_without_prometheus_no_dashboards_are_made():
    run, grafana = build_observed("loki")
    assert not grafana.dashboards and not of_type(run, "Folder") and not of_type(run, "Dashboard")


def test_with_the_datasources_the_chat_contact_point_is_still_there_and_nothing_is_plain(observed):
    run, grafana = observed
    assert grafana.chat is not None
    by_name(run, "grafana-chat-contact-point", "ContactPoint")
    assert_no_plain_secrets(run)
