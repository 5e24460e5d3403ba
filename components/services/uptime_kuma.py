"""Uptime Kuma: probes the platform's public URLs from the outside in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import pulumi

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import uptime_kuma as config
from components.config.prometheus import BasicAuth, ScrapeJob
from components.container import Healthcheck, ServiceContainer
from components.docker_host import DockerHostComponent
from components.integrations.chat import ChatWebhookEdge
from components.integrations.email import EmailEdge, MailRelay
from stacks.spec import StackSpec

if TYPE_CHECKING:
    from components.services.mattermost import Mattermost


class UptimeKuma(Service):
    """On the edge network (it probes the public URLs through Caddy) and the monitoring network
    (Prometheus scrapes its /metrics); its UI is gated behind SSO by the routing issue.

    Kuma 1.x has no first-run env or CLI: a bootstrap step creates the admin over Kuma's own
    socket.io API with the image's node, then the API key Prometheus scrapes /metrics with.
    With `chat` and/or `mail`, a second step keeps Kuma's own `mattermost` and `smtp` notifications,
    on by default and on every monitor. A separate step: the hook URL resolves only once the proxy
    routes Mattermost, and the API key Prometheus needs must not wait for that.
    A third step keeps one HTTP monitor per public endpoint (`endpoints`: monitor name -> URL),
    with those notifications on each; Prometheus alerts on their `monitor_status` from /metrics.
    """

    HTTP_PORT = 3001

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        chat: Mattermost | None = None,
        mail: MailRelay | None = None,
        endpoints: Mapping[str, str] = {},
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("uptime_kuma", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.url = spec.public_url("uptime_kuma")
        self.admin_username = "admin"
        admin_password = self.generate_secret("uptime_kuma-admin-password")
        self.admin_password = admin_password
        self.container = ServiceContainer(
            self,
            "uptime_kuma",
            spec=spec.services.uptime_kuma,
            host=host,
            networks=[host.edge_network, host.monitoring_network],
            volumes={"uptime_kuma-data": "/app/data"},
            # The image ships its own probe, extra/healthcheck (a Go binary reading the same
            # port/TLS settings as the server): its Dockerfile HEALTHCHECK, with its start period.
            healthcheck=Healthcheck(["CMD", "/app/extra/healthcheck"], start_period="180s", interval="30s", timeout="30s"),
        )
        bootstrap = ContainerScript(
            self,
            "uptime_kuma-bootstrap",
            container=self.container,
            host=host,
            script=config.bootstrap_script(config.KumaBootstrap(url=self._local_url)),
            env={config.USERNAME_ENV: self.admin_username, config.PASSWORD_ENV: admin_password},
            secret_output=True,
        )
        # The password Prometheus sends to /metrics (basic auth; Kuma ignores the user name).
        self.api_key: pulumi.Output[str] = bootstrap.output
        self.api_key_name = config.KumaBootstrap().key_name
        self.notifications: config.KumaNotifications | None = None
        self.chat: ChatWebhookEdge | None = None
        self.mail: EmailEdge | None = None
        notifications = self._notifications(host, chat, mail, bootstrap) if chat is not None or mail is not None else None
        self._monitors(spec, host, endpoints, notifications or bootstrap)
        self.register_outputs({"internal_url": self.internal_url, "monitored": sorted(endpoints)})

    def _notifications(self, host: DockerHostComponent, hub: Mattermost | None, relay: MailRelay | None,
                       bootstrap: ContainerScript) -> ContainerScript:
        env: dict[str, pulumi.Input[str]] = {config.USERNAME_ENV: self.admin_username, config.PASSWORD_ENV: self.admin_password}
        mattermost = smtp = None
        if hub is not None:
            self.chat = ChatWebhookEdge(self, hub, "alerts", username="Uptime Kuma")
            mattermost = config.MattermostNotification(channel=self.chat.channel_name, username=self.chat.username)
            env[config.MATTERMOST_URL_ENV] = self.chat.hook_url
        if relay is not None:
            self.mail = EmailEdge(self, relay)
            smtp = config.SmtpNotification(host=relay.host, port=relay.port, from_address=relay.from_address,
                                           recipients=relay.recipients, username=relay.username, starttls=relay.starttls)
            if relay.password is not None:
                env[config.SMTP_PASSWORD_ENV] = relay.password
        self.notifications = config.KumaNotifications(mattermost=mattermost, smtp=smtp, url=self._local_url)
        return ContainerScript(
            self,
            "uptime_kuma-notifications",
            container=self.container,
            host=host,
            script=config.notifications_script(self.notifications),
            env=env,
            depends_on=[bootstrap.command],
        )

    def _monitors(self, spec: StackSpec, host: DockerHostComponent, endpoints: Mapping[str, str],
                  after: ContainerScript) -> None:
        """Always made, even with no endpoint: the step also pauses monitors whose endpoint went away."""
        wanted = config.KumaMonitors(
            monitors=tuple(config.HttpMonitor(name, url) for name, url in sorted(endpoints.items())),
            notification_names=self.notifications.names() if self.notifications else (),
            # Kuma cannot trust Caddy's internal CA; with ACME it checks the chain and the expiry.
            ignore_tls=spec.tls.mode == "internal",
            url=self._local_url,
        )
        self.monitors = ContainerScript(
            self,
            "uptime_kuma-monitors",
            container=self.container,
            host=host,
            script=config.monitors_script(wanted),
            env={config.USERNAME_ENV: self.admin_username, config.PASSWORD_ENV: self.admin_password},
            depends_on=[after.command],
        )

    @property
    def _local_url(self) -> str:
        """Where the bootstrap programs reach Kuma: from inside its own container."""
        return f"http://127.0.0.1:{self.HTTP_PORT}"

    @property
    def metrics_target(self) -> str:
        return self.upstream

    def scrape_job(self) -> ScrapeJob:
        """/metrics with the API key as the basic-auth password. Kuma 1.23 (server/auth.js
        `apiAuth`) checks the admin's login there only until the first API key exists, then only
        API keys, for good: a key survives a key made in the UI and an admin password change."""
        return ScrapeJob("uptime_kuma", (self.metrics_target,),
                         basic_auth=BasicAuth(self.api_key_name, pulumi.Output.secret(self.api_key)))
