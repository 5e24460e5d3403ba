"""Uptime Kuma under the recording engine: container, networks, the bootstrap, notification and
monitor steps, and the scrape job Prometheus gets."""

from __future__ import annotations

import pytest

from cli.offline import SECRET_MARK
from components.config.uptime_kuma import (
    MATTERMOST_URL_ENV,
    PASSWORD_ENV,
    SMTP_PASSWORD_ENV,
    USERNAME_ENV,
    HttpMonitor,
    KumaBootstrap,
    KumaMonitors,
    KumaNotifications,
    MattermostNotification,
    SmtpNotification,
    bootstrap_script,
    monitors_script,
    notifications_script,
)
from components.services.uptime_kuma import UptimeKuma
from tests.support import assert_no_plain_secrets, assert_production_shape, build_named, by_name, run_components, served_without_proxy


def build():
    return build_named("kuma", UptimeKuma)


def test_container_has_the_production_shape():
    run, built = build()
    spec = built["spec"].services.uptime_kuma
    container = assert_production_shape(run, "uptime_kuma", image=spec.image, memory=spec.memory_mb)
    assert container.inputs["healthcheck"]["tests"] == ["CMD", "/app/extra/healthcheck"]
    assert container.inputs["healthcheck"]["startPeriod"] == "180s"
    assert container.inputs["volumes"] == [{"containerPath": "/app/data", "volumeName": "ceres-dev-uptime_kuma-data"}]


def test_it_probes_through_the_edge_and_is_scraped_on_monitoring():
    run, built = build()
    names = [n["name"] for n in by_name(run, "uptime_kuma", "Container").inputs["networksAdvanced"]]
    assert names == ["ceres-dev-edge", "ceres-dev-monitoring"]
    kuma = built["kuma"]
    assert kuma.upstream == "uptime-kuma:3001" and kuma.metrics_target == "uptime-kuma:3001"
    assert kuma.internal_url == "http://uptime-kuma:3001"
    assert kuma.url == "https://status.ceres.localhost" and kuma.admin_username == "admin"


def test_bootstrap_runs_in_the_container_after_it_is_healthy_with_secrets_from_env_only():
    run, _ = build()
    step = by_name(run, "uptime_kuma-bootstrap", "Command")
    container = by_name(run, "uptime_kuma", "Container")
    assert container.urn in step.dependencies
    assert step.inputs["create"] == (
        f"docker exec -i -e {USERNAME_ENV} -e {PASSWORD_ENV} ceres-dev-uptime-kuma sh -s"
    )
    assert step.inputs["stdin"] == bootstrap_script(KumaBootstrap(url="http://127.0.0.1:3001"))
    environment = step.inputs["environment"]
    assert environment[PASSWORD_ENV] == SECRET_MARK and environment[USERNAME_ENV] == "admin"
    assert step.secret_outputs == ["stdout"], "the API key it prints is a secret output"


def test_no_secret_is_plain_anywhere():
    run, _ = build()
    assert_no_plain_secrets(run)


# Notifications: chat-uptime-kuma (Mattermost, alerts channel) and email-uptime-kuma (the outside relay).

def relay(password: bool = True):
    import pulumi

    from components.integrations.email import MailRelay

    return MailRelay(host="smtp.example.org", port=587, from_address="ceres@example.org", username="ceres" if password else None,
                     password=pulumi.Output.secret("offline-smtp-password") if password else None, starttls=True,
                     recipients=("ops@example.org",))


def build_notifying(chat: bool = True, mail: bool = True, password: bool = True):
    made: dict = {}

    def program(spec, host):
        hub = None
        if chat:
            from components.services.mattermost import Mattermost
            from components.services.postgres import PostgreSQL

            hub = Mattermost(spec, host, postgres=PostgreSQL(spec.services.postgres, host, ("mattermost",)))
            served_without_proxy(hub)
        made["kuma"] = UptimeKuma(spec, host, chat=hub, mail=relay(password) if mail else None)
    return run_components(program), made["kuma"]


@pytest.fixture(scope="module")
def notifying():
    return build_notifying()


def test_without_chat_or_mail_there_are_no_edges_or_notification_step():
    run, built = build()
    assert built["kuma"].chat is None and built["kuma"].mail is None
    assert not [r for r in run.resources if r.name in ("chat-uptime-kuma", "email-uptime-kuma", "uptime_kuma-notifications")]


def test_both_edges_are_under_kuma(notifying):
    run, kuma = notifying
    service = by_name(run, "uptime_kuma", "ceres:services:UptimeKuma").urn
    assert by_name(run, "chat-uptime-kuma", "ChatWebhookEdge").parent == service
    assert by_name(run, "email-uptime-kuma", "EmailEdge").parent == service
    assert kuma.chat.channel_name == "alerts" and kuma.chat.username == "Uptime Kuma"


def test_the_notification_step_gets_the_hook_url_and_smtp_password_only_as_secrets(notifying):
    run, _ = notifying
    step = by_name(run, "uptime_kuma-notifications", "Command")
    assert step.inputs["create"] == (
        f"docker exec -i -e {USERNAME_ENV} -e {PASSWORD_ENV} -e {MATTERMOST_URL_ENV} -e {SMTP_PASSWORD_ENV} "
        "ceres-dev-uptime-kuma sh -s")
    environment = step.inputs["environment"]
    assert environment[MATTERMOST_URL_ENV] == SECRET_MARK and environment[SMTP_PASSWORD_ENV] == SECRET_MARK
    assert environment[PASSWORD_ENV] == SECRET_MARK
    expected = notifications_script(KumaNotifications(
        mattermost=MattermostNotification(channel="alerts"),
        smtp=SmtpNotification(host="smtp.example.org", port=587, from_address="ceres@example.org",
                              recipients=("ops@example.org",), username="ceres"),
        url="http://127.0.0.1:3001"))
    assert step.inputs["stdin"] == expected


def test_the_notification_step_runs_after_the_first_bootstrap(notifying):
    run, _ = notifying
    step = by_name(run, "uptime_kuma-notifications", "Command")
    assert {by_name(run, "uptime_kuma", "Container").urn, by_name(run, "uptime_kuma-bootstrap", "Command").urn} <= set(step.dependencies)


def test_mail_alone_needs_no_mattermost_and_a_relay_without_login_no_password():
    run, kuma = build_notifying(chat=False, password=False)
    assert kuma.chat is None
    step = by_name(run, "uptime_kuma-notifications", "Command")
    assert step.inputs["create"] == f"docker exec -i -e {USERNAME_ENV} -e {PASSWORD_ENV} ceres-dev-uptime-kuma sh -s"
    assert "mattermost" not in step.inputs["stdin"].split("const settings = ", 1)[1].split("\n", 1)[0]


def test_with_notifications_no_secret_is_plain_anywhere(notifying):
    run, _ = notifying
    assert_no_plain_secrets(run)


# Monitors: one per public endpoint, a step after the notifications; and the scrape job.

ENDPOINTS = {"Gitea": "https://gitea.ceres.localhost", "Prometheus": "https://prometheus.ceres.localhost"}


def build_watching(stack: str = "dev", **kwargs):
    made: dict = {}

    def program(spec, host):
        made["kuma"] = UptimeKuma(spec, host, **kwargs)
    return run_components(program, stack=stack), made["kuma"]


def expected_monitors(ignore_tls: bool, names: tuple[str, ...] = ()) -> str:
    return monitors_script(KumaMonitors(
        monitors=(HttpMonitor("Gitea", ENDPOINTS["Gitea"]), HttpMonitor("Prometheus", ENDPOINTS["Prometheus"])),
        notification_names=names, ignore_tls=ignore_tls, url="http://127.0.0.1:3001"))


def test_the_monitors_step_gets_the_endpoints_as_data_and_runs_after_the_bootstrap():
    run, _ = build_watching(endpoints=ENDPOINTS)
    step = by_name(run, "uptime_kuma-monitors", "Command")
    assert step.inputs["create"] == f"docker exec -i -e {USERNAME_ENV} -e {PASSWORD_ENV} ceres-dev-uptime-kuma sh -s"
    assert step.inputs["stdin"] == expected_monitors(ignore_tls=True), "dev: Caddy's internal CA, which Kuma cannot trust"
    assert all(url in step.inputs["stdin"] for url in ENDPOINTS.values()), "the endpoints are plain data"
    assert step.inputs["environment"][PASSWORD_ENV] == SECRET_MARK
    assert step.secret_outputs == [], "it prints only what it did"
    assert {by_name(run, "uptime_kuma", "Container").urn,
            by_name(run, "uptime_kuma-bootstrap", "Command").urn} <= set(step.dependencies)
    assert_no_plain_secrets(run)


def test_with_acme_certificates_kuma_checks_tls_and_watches_expiry():
    run, _ = build_watching(stack="prod", endpoints=ENDPOINTS)
    stdin = by_name(run, "uptime_kuma-monitors", "Command").inputs["stdin"]
    assert stdin == expected_monitors(ignore_tls=False)
    assert '"ignoreTls": false, "expiryNotification": true' in stdin


def test_the_monitors_step_attaches_the_notifications_and_runs_after_them(notifying):
    run, _ = notifying
    step = by_name(run, "uptime_kuma-monitors", "Command")
    assert by_name(run, "uptime_kuma-notifications", "Command").urn in step.dependencies
    assert '"notificationNames": ["ceres-mattermost", "ceres-email"]' in step.inputs["stdin"]


def test_with_no_endpoints_the_step_still_runs_to_pause_what_went_away():
    run, _ = build()
    assert '"monitors": []' in by_name(run, "uptime_kuma-monitors", "Command").inputs["stdin"]


def test_prometheus_scrapes_with_the_api_key_only_as_a_secret_file():
    import pulumi_command as command

    from components.config.prometheus import ScrapeJob
    from components.services.prometheus import Prometheus

    made: dict = {}

    def program(spec, host):
        made["kuma"] = UptimeKuma(spec, host)
        Prometheus(spec, host).scrape([made["kuma"]])
        # The password by itself, as any consumer would get it: secret without anyone's help.
        command.local.Command("scrape-password-probe", create="true",
                              environment={"PASSWORD": made["kuma"].scrape_job().basic_auth.password})
    run = run_components(program)
    assert by_name(run, "scrape-password-probe", "Command").inputs["environment"]["PASSWORD"] == SECRET_MARK
    job = made["kuma"].scrape_job()
    assert isinstance(job, ScrapeJob) and job.name == "uptime_kuma" and job.targets == ("uptime-kuma:3001",)
    assert job.basic_auth.username == "ceres-prometheus", "Kuma ignores the user name; it names the key"
    uploads = {u["file"]: u["content"] for u in by_name(run, "prometheus", "Container").inputs["uploads"]}
    assert uploads["/etc/prometheus/secrets/uptime_kuma/basic_auth_password"] == SECRET_MARK
    assert "basic_auth" in uploads["/etc/prometheus/prometheus.yml"]
    assert_no_plain_secrets(run)
