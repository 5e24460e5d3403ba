"""Alertmanager: groups, inhibits and routes the platform's alerts to its receivers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.base import Service
from components.config import alertmanager as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.chat import ChatWebhookEdge
from components.integrations.email import EmailEdge, MailRelay
from stacks.spec import StackSpec

if TYPE_CHECKING:
    from components.services.mattermost import Mattermost

CONFIG_FILE = "/etc/alertmanager/alertmanager.yml"


class Alertmanager(Service):
    """On the monitoring network only; its UI is gated behind SSO by the routing issue.

    With `chat`, critical and warning alerts (and their resolution) go to the alerts channel;
    with `mail`, critical ones are also mailed to the relay's recipients, so an alert still
    reaches someone when chat is down. Secrets (the hook URL, the relay password) reach the
    container as secret files the config names.
    """

    HTTP_PORT = 9093
    HEALTH_PATH = "/-/healthy"

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        chat: Mattermost | None = None,
        mail: MailRelay | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("alertmanager", pulumi.ResourceOptions.merge(host.placed(), opts))
        receivers: list[config.Receiver] = []
        smtp = None
        self.chat = ChatWebhookEdge(self, chat, "alerts", username="Alertmanager") if chat is not None else None
        if self.chat is not None:
            receivers.append(config.ChatReceiver(
                name="chat", channel=self.chat.channel_name, hook_url=self.chat.hook_url, username=self.chat.username,
            ))
        self.mail = EmailEdge(self, mail) if mail is not None else None
        if mail is not None:
            receivers.append(config.EmailReceiver(name="email", to=mail.recipients))
            smtp = config.Smtp(
                smarthost=mail.smarthost, from_address=mail.from_address,
                username=mail.username, password=mail.password, require_tls=mail.starttls,
            )
        settings = config.AlertmanagerSettings(receivers=tuple(receivers), smtp=smtp)
        self.url = spec.public_url("alertmanager")
        self.container = ServiceContainer(
            self,
            "alertmanager",
            spec=spec.services.alertmanager,
            host=host,
            networks=[host.monitoring_network],
            command=[
                f"--config.file={CONFIG_FILE}",
                "--storage.path=/alertmanager",
                # Links in notifications point at the (gated) public UI.
                f"--web.external-url={self.url}",
                # One instance: no gossip cluster to form, so no cluster port to listen on.
                "--cluster.listen-address=",
            ],
            volumes={"alertmanager-data": "/alertmanager"},
            files={CONFIG_FILE: config.alertmanager_yml(settings)},
            secret_files=config.secret_files(settings),
            # prom/alertmanager is busybox-based: wget is there.
            healthcheck=http_check(f"http://localhost:{self.HTTP_PORT}{self.HEALTH_PATH}", tool="wget"),
        )
        self.metrics_target = self.upstream
        self.register_outputs({"internal_url": self.internal_url})
