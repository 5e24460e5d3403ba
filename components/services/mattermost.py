"""Mattermost: the platform's chat hub, where every event source posts."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import mattermost as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.database import DatabaseEdge
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec


class Mattermost(Service):
    """Mattermost behind Caddy at its public URL, on its own PostgreSQL database (it supports no other).

    The pinned Team Edition (10.11 ESR) uses no Redis, so `spec.services.mattermost.edition` wires
    nothing here. Its first run makes a system admin, the chat team with its channels, and a bot
    whose access token the chat integrations use. That bootstrap runs `sh`, `curl` and `mmctl`
    inside the container, as the 10.11 image has them; later images are distroless.
    """

    HTTP_PORT = 8065

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("mattermost", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.url = spec.public_url("mattermost")
        self.team = spec.chat.team
        self.database = DatabaseEdge(self, postgres)
        db = self.database.database
        settings = config.MattermostSettings(site_url=self.url, port=self.HTTP_PORT)
        datasource = db.password.apply(
            lambda password: "MM_SQLSETTINGS_DATASOURCE=" + config.datasource(db.user, password, db.host, db.port, db.name)
        )
        self.container = ServiceContainer(
            self,
            "mattermost",
            spec=spec.services.mattermost,
            host=host,
            networks=[host.edge_network, host.data_network],
            envs=[*config.environment(settings), datasource],
            volumes=config.VOLUMES,
            # The 10.11 image ships curl, but Mattermost's images from 10.12 on are distroless (no
            # shell, no curl: mattermost/mattermost#33839); the host's probe busybox keeps this check
            # working across that change. The first start migrates the schema, hence the long grace.
            healthcheck=http_check(f"http://127.0.0.1:{self.HTTP_PORT}/api/v4/system/ping", tool="probe", start_period="180s"),
            depends_on=[db.ready],
        )
        admin_password = self.generate_secret("mattermost-admin-password")
        setup = ContainerScript(
            self,
            "mattermost-bootstrap",
            container=self.container,
            host=host,
            script=config.setup_script(config.Bootstrap(
                admin_email=f"{config.ADMIN_USERNAME}@{spec.domain}",
                bot_email=f"{config.BOT_USERNAME}@{spec.domain}",
                team=self.team,
                channels=tuple(spec.chat.channels.model_dump().values()),
            )),
            env={config.ADMIN_PASSWORD_VARIABLE: admin_password},
            user=config.CONTAINER_USER,
        )
        # Its own step, so changing the channels re-runs the setup without touching the token.
        token = ContainerScript(
            self,
            "mattermost-bot-token",
            container=self.container,
            host=host,
            script=config.bot_token_script(),
            user=config.CONTAINER_USER,
            secret_output=True,
            depends_on=[setup.command],
        )
        self.admin_username = pulumi.Output.secret(config.ADMIN_USERNAME)
        self.admin_password = admin_password
        self.bot_username = config.BOT_USERNAME
        self.bot_token = pulumi.Output.secret(token.output)
        self.register_outputs({"url": self.url, "team": self.team})
