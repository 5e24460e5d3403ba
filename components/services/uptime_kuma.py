"""Uptime Kuma: probes the platform's public URLs from the outside in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import uptime_kuma as config
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
    """

    HTTP_PORT = 3001

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        chat: Mattermost | None = None,
        mail: MailRelay | None = None,
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
            script=config.bootstrap_script(config.KumaBootstrap(url=f"http://127.0.0.1:{self.HTTP_PORT}")),
            env={config.USERNAME_ENV: self.admin_username, config.PASSWORD_ENV: admin_password},
            secret_output=True,
        )
        # The password Prometheus sends to /metrics (basic auth; Kuma ignores the user name).
        self.api_key: pulumi.Output[str] = bootstrap.output
        self.chat: ChatWebhookEdge | None = None
        self.mail: EmailEdge | None = None
        if chat is not None or mail is not None:
            self._notifications(host, chat, mail, bootstrap)
        self.register_outputs({"internal_url": self.internal_url})

    def _notifications(self, host: DockerHostComponent, hub: Mattermost | None, relay: MailRelay | None,
                       bootstrap: ContainerScript) -> None:
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
        ContainerScript(
            self,
            "uptime_kuma-notifications",
            container=self.container,
            host=host,
            script=config.notifications_script(config.KumaNotifications(
                mattermost=mattermost, smtp=smtp, url=f"http://127.0.0.1:{self.HTTP_PORT}")),
            env=env,
            depends_on=[bootstrap.command],
        )

    @property
    def metrics_target(self) -> str:
        return self.upstream
