"""Mattermost: the platform's chat hub, where every event source posts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import mattermost as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.database import DatabaseEdge
from components.integrations.oidc import OidcLogin, UserClaim, oidc_login
from components.providers import mattermost as api
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec

if TYPE_CHECKING:
    from components.integrations.chat import ChatWebhookEdge

# What each channel is for, shown as its purpose in Mattermost (keys of `spec.chat.channels`).
CHANNEL_PURPOSES = {
    "dev": "Commits, pull requests, issues and releases from Gitea; wiki edits",
    "projects": "New and updated tasks from Redmine",
    "ops": "Operations notices",
    "alerts": "Alerts from Alertmanager, Grafana and Uptime Kuma",
    "files": "Uploads and shares in Nextcloud project folders",
}

# What Mattermost's GitLab provider reads from the userinfo response (model/gitlab/gitlab.go:
# `id` int64, non-zero, stored as the account's AuthData; `username`; `email`). `name` comes from
# the realm's default `profile` scope (its "full name" mapper), which every client gets.
#
# Keycloak's user id is a UUID, and Go refuses to decode a string into that int64. No built-in
# user property is a unique number; `createdTimestamp` (milliseconds) is the closest: numeric,
# non-zero and never changes for a user. The trade-off: two users created in the same millisecond
# (a bulk import, an LDAP sync that copies LDAP's second-precision createTimestamp) share an id,
# and Mattermost would then sign the second one in as the first (it looks accounts up by
# AuthData). A truly unique number needs a script mapper (e.g. the first 48 bits of the UUID) in
# a JavaScript provider JAR deployed into Keycloak with the preview `scripts` feature: a Keycloak
# image change that pulumi-keycloak alone cannot make (it could only reference the mapper).
GITLAB_CLAIMS = (
    UserClaim("id", "createdTimestamp", "long"),
    UserClaim("username", "username"),
    UserClaim("email", "email"),
)


class Mattermost(Service):
    """Mattermost behind Caddy at its public URL, on its own PostgreSQL database (it supports no other).

    Its first run makes a system admin and a bot; the bot's access token then drives the
    Mattermost provider, which creates the chat team (making the bot its team admin), one channel
    per `spec.chat.channels` entry, and each event source's incoming webhook (`incoming_webhook`).
    The provider calls the API at the public URL, so those resources wait for Caddy. The
    bootstrap runs `sh`, `curl` and `mmctl` inside the container, as the 10.11 image has them;
    later images are distroless.

    With the sso-mattermost edge, people sign in through the realm: on Team Edition (the pinned
    10.11 ESR, which uses no Redis either) through its GitLab provider pointed at Keycloak; with
    `edition: enterprise` through native OpenID Connect. Neither maps a Keycloak group to a
    Mattermost role (Team Edition has no group sync at all; the licensed OpenID provider has no
    admin attribute, unlike SAML and LDAP), so the admin group grants nothing here: the bootstrap
    admin stays the system admin and promotes people by hand
    (`mmctl --local roles system-admin <username>`, or System Console > Users).
    """

    HTTP_PORT = 8065

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL,
        sso: bool = False,
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
        envs: list[pulumi.Input[str]] = [*config.environment(settings), datasource]
        self.oidc: OidcLogin | None = None
        if sso:
            envs += self._sso_envs(spec, spec.services.mattermost.edition)
        self.container = ServiceContainer(
            self,
            "mattermost",
            spec=spec.services.mattermost,
            host=host,
            # The edge network also reaches Keycloak's internal endpoints; Alertmanager posts alerts
            # from the monitoring network.
            networks=[host.edge_network, host.data_network, host.monitoring_network],
            envs=envs,
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
        self._channel_names: dict[str, str] = spec.chat.channels.model_dump()
        self._api = {"api_url": self.reachable_url, "token": self.bot_token, "verify_tls": spec.tls.mode != "internal"}
        self.team_resource = api.Team(
            "mattermost-team", team_name=self.team, display_name=self.team.capitalize(), **self._api,
            opts=self.child(depends_on=[token.command]),
        )
        self.channels = {
            purpose: api.Channel(
                f"mattermost-channel-{purpose}", team_id=self.team_resource.team_id, channel_name=name,
                display_name=name.capitalize(), purpose=CHANNEL_PURPOSES[purpose], **self._api, opts=self.child(),
            )
            for purpose, name in self._channel_names.items()
        }
        self.register_outputs({"url": self.url, "team": self.team, "channels": self._channel_names})

    def channel_name(self, purpose: str) -> str:
        if purpose not in self._channel_names:
            raise ValueError(f"no chat channel for {purpose!r}; the channels are {sorted(self._channel_names)}")
        return self._channel_names[purpose]

    def incoming_webhook(self, edge: ChatWebhookEdge, purpose: str, *, username: str, description: str) -> api.IncomingWebhook:
        """A hook locked to the channel for `purpose`, owned by `edge`; its `hook_id` is secret."""
        self.channel_name(purpose)
        return api.IncomingWebhook(
            f"{edge.edge.id}-hook",
            channel_id=self.channels[purpose].channel_id,
            display_name=f"CERES {username}"[:64],
            description=description[:500],
            username=username,
            # The source cannot post elsewhere with a `channel` override in its payload.
            channel_locked=True,
            **self._api,
            opts=pulumi.ResourceOptions(parent=edge),
        )

    def _sso_envs(self, spec: StackSpec, edition: str) -> list[pulumi.Input[str]]:
        if edition == "team":
            self.oidc = oidc_login(spec, self, config.GITLAB_CALLBACKS, claims=GITLAB_CLAIMS)
        else:
            self.oidc = oidc_login(spec, self, config.OPENID_CALLBACKS)
        login = self.oidc
        sso = config.SsoSettings(
            edition=edition,
            client_id=login.client_id,
            auth_endpoint=login.auth_url,
            token_endpoint=login.endpoint("token"),
            userinfo_endpoint=login.endpoint("userinfo"),
            discovery_endpoint=login.discovery_url,
        )
        secret = pulumi.Output.concat(config.sso_secret_variable(edition), "=", login.client_secret)
        return [*config.sso_environment(sso), secret]
