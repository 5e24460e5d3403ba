"""Gitea: the platform's git server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pulumi
import pulumi_command as command
import pulumi_random as random

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import gitea as config
from components.config.prometheus import ScrapeJob
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.cache import CacheEdge
from components.integrations.chat import ChatWebhookEdge
from components.integrations.database import DatabaseEdge
from components.integrations.oidc import OidcClientEdge, OidcLogin, oidc_login
from components.services.postgres import PostgreSQL
from components.providers import gitea as api
from components.services.redis import Redis
from stacks.spec import StackSpec

if TYPE_CHECKING:
    from components.services.mattermost import Mattermost

# What reaches the dev channel from every project repository.
DEV_CHANNEL_EVENTS = ("push", "pull_request", "issues", "release")


class Gitea(Service):
    """Gitea behind Caddy at its public URL.

    PostgreSQL when the db-gitea edge is on, SQLite otherwise; cache, sessions and queues in
    Redis when the cache-gitea edge is on, in memory, files and its own LevelDB otherwise.
    Bootstraps an admin and the platform's API token; serves /metrics behind a bearer token.
    With `sso`, people sign in through the realm (an OpenID Connect login source; members of the
    admin group are Gitea admins); the bootstrap admin stays as a break-glass local login.
    `webhook_hosts` are the containers its webhooks may reach (Gitea refuses private addresses
    otherwise): the chat hub, the repo sync. With `chat`, the projects organisation
    (`services.gitea.organization`) gets a webhook that posts its repositories' pushes, pull
    requests, issues and releases to the dev channel; the Gitea provider makes both through the
    API at the public URL, so they wait for Caddy.
    """

    HTTP_PORT = 3000

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL | None = None,
        redis: Redis | None = None,
        sso: bool = False,
        chat: Mattermost | None = None,
        webhook_hosts: Sequence[str] = (),
        scraped: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("gitea", pulumi.ResourceOptions.merge(host.placed(), opts))
        self._host = host
        service = spec.services.gitea
        root_url = spec.public_url("gitea")
        secret_key = self.generate_secret("gitea-secret-key", 64)
        internal_token = self.generate_secret("gitea-internal-token", 64)
        metrics_token = self.generate_secret("gitea-metrics-token")
        admin_password = self.generate_secret("gitea-admin-password")
        envs: list[pulumi.Input[str]] = [
            "USER_UID=1000",
            "USER_GID=1000",
            f"GITEA__server__ROOT_URL={root_url}/",
            f"GITEA__server__DOMAIN={root_url.removeprefix('https://')}",
            f"GITEA__server__HTTP_PORT={self.HTTP_PORT}",
            # Caddy serves only HTTPS; git goes over HTTPS with tokens, not SSH.
            "GITEA__server__DISABLE_SSH=true",
            "GITEA__server__START_SSH_SERVER=false",
            "GITEA__security__INSTALL_LOCK=true",
            "GITEA__service__DISABLE_REGISTRATION=true",
            pulumi.Output.concat("GITEA__security__SECRET_KEY=", secret_key),
            pulumi.Output.concat("GITEA__security__INTERNAL_TOKEN=", internal_token),
            "GITEA__metrics__ENABLED=true",
            pulumi.Output.concat("GITEA__metrics__TOKEN=", metrics_token),
            f"GITEA__webhook__ALLOWED_HOST_LIST={config.webhook_allowed_hosts(spec.domain, tuple(webhook_hosts))}",
        ]
        networks = [host.edge_network]
        depends_on: list[pulumi.Resource] = []
        if postgres is not None:
            self.database = DatabaseEdge(self, postgres)
            envs += ["GITEA__database__DB_TYPE=postgres", "GITEA__database__SSL_MODE=disable"]
            envs += self.database.env("GITEA__database__", {"HOST": "host_port", "NAME": "name", "USER": "user", "PASSWD": "password"})
            depends_on.append(self.database.database.ready)
        else:
            envs += ["GITEA__database__DB_TYPE=sqlite3", "GITEA__database__PATH=/data/gitea/gitea.db"]
        if redis is not None:
            self.cache = CacheEdge(self, redis)
            # One URL (user, password, database) for all three: Gitea parses each with go-redis.
            envs += ["GITEA__cache__ADAPTER=redis", "GITEA__session__PROVIDER=redis", "GITEA__queue__TYPE=redis"]
            envs += self.cache.env("GITEA__", {"cache__HOST": "url", "session__PROVIDER_CONFIG": "url", "queue__CONN_STR": "url"})
            depends_on.append(self.cache.login.ready)
        else:
            # Single instance: sessions survive restarts in files, queues in the volume's LevelDB.
            envs += ["GITEA__cache__ADAPTER=memory", "GITEA__session__PROVIDER=file", "GITEA__queue__TYPE=level"]
        if postgres is not None or redis is not None:
            networks.append(host.data_network)
        if scraped:
            networks.append(host.monitoring_network)
        self.oidc: OidcLogin | None = None
        if sso:
            self.oidc = oidc_login(spec, self, (config.SSO_CALLBACK_PATH,))
            envs += config.sso_envs()
        self.container = ServiceContainer(
            self,
            "gitea",
            spec=service,
            host=host,
            networks=networks,
            envs=envs,
            volumes={"gitea-data": "/data"},
            # The image ships curl.
            healthcheck=http_check(f"http://localhost:{self.HTTP_PORT}/api/healthz", tool="curl"),
            depends_on=depends_on,
        )
        self.bootstrap = bootstrap = ContainerScript(
            self,
            "gitea-bootstrap",
            container=self.container,
            host=host,
            script=config.bootstrap_script(config.Bootstrap(
                admin_username=config.ADMIN_USERNAME,
                admin_email=f"{config.ADMIN_USERNAME}@{spec.domain}",
                token_name=config.TOKEN_NAME,
                api_url=f"http://localhost:{self.HTTP_PORT}/api/v1",
            )),
            env={config.ADMIN_PASSWORD_VARIABLE: admin_password},
            # The gitea CLI refuses to run as root.
            user="git",
            secret_output=True,
        )
        self.url = root_url
        self._domain = spec.domain
        self.admin_username = config.ADMIN_USERNAME
        self.admin_password: pulumi.Output[str] = admin_password
        self.api_token: pulumi.Output[str] = pulumi.Output.secret(bootstrap.output)
        self.metrics_token: pulumi.Output[str] = metrics_token
        self.metrics_target = self.upstream
        self._verify_tls = spec.tls.mode != "internal"
        self._organization_name = service.organization
        self._organization: api.Organization | None = None
        self.chat = ChatWebhookEdge(self, chat, "dev", username="Gitea") if chat is not None else None
        if self.chat is not None:
            api.Webhook(
                "chat-gitea-webhook", scope="org", owner=service.organization, url=self.chat.hook_url,
                channel=self.chat.channel_name, events=list(DEV_CHANNEL_EVENTS), username="Gitea",
                **self.api_access(), opts=pulumi.ResourceOptions(parent=self.chat, depends_on=[self.projects_organization()]),
            )
        self.register_outputs({"url": root_url})

    def projects_organization(self) -> api.Organization:
        """The organisation that holds project repositories (`services.gitea.organization`), made
        through the API once something needs it: its chat hook, the repo sync's hook."""
        if self._organization is None:
            name = self._organization_name
            self._organization = api.Organization(
                "gitea-organization", org_name=name, full_name=f"{name} projects", visibility="private",
                **self.api_access(), opts=self.child(),
            )
        return self._organization

    def scrape_job(self) -> ScrapeJob:
        """/metrics answers only with the metrics token as a bearer token."""
        return ScrapeJob(self.service, (self.metrics_target,), bearer_token=self.metrics_token)

    def api_access(self) -> dict[str, pulumi.Input]:
        """What the Gitea provider's resources connect with: the public URL (once Caddy serves it),
        the admin API token from the bootstrap (a secret), and whether to check TLS."""
        return {"api_url": self.reachable_url, "token": self.api_token, "verify_tls": self._verify_tls}

    def bot_account(self, owner: pulumi.Resource, username: str, scopes: str) -> pulumi.Output[str]:
        """A plain (non-admin) account for another service, made under `owner` (the edge that needs
        it) with Gitea's CLI; returns its API token (a secret), which is also its git password."""
        password = random.RandomPassword(f"{username}-password", length=32, special=False,
                                         opts=pulumi.ResourceOptions(parent=owner)).result
        account = ContainerScript(
            owner,
            f"{username}-account",
            container=self.container,
            host=self._host,
            script=config.bootstrap_script(config.Bootstrap(
                admin_username=username,
                admin_email=f"{username}@{self._domain}",
                token_name=username,
                api_url=f"http://localhost:{self.HTTP_PORT}/api/v1",
                admin=False,
                token_scopes=scopes,
            )),
            env={config.ADMIN_PASSWORD_VARIABLE: password},
            user="git",
            secret_output=True,
            depends_on=[self.bootstrap.command],
        )
        return pulumi.Output.secret(account.output)

    def apply_sso(self, edge: OidcClientEdge) -> None:
        """The login source, once its Keycloak client exists; then a restart if it changed."""
        login = self.oidc
        script = config.sso_script(config.SsoSource(
            client_id=login.client_id, discovery_url=login.discovery_url, admin_group=login.admin_group,
        ))
        step = ContainerScript(
            self,
            "gitea-sso",
            container=self.container,
            host=self._host,
            script=script,
            env={config.CLIENT_SECRET_VARIABLE: login.client_secret},
            user="git",
            depends_on=[edge.client, self.bootstrap.command],
        )
        # Replaced, and so run again, whenever the SSO step can have run again: its script or the
        # secret changed. It restarts Gitea only if that run updated an existing source.
        command.local.Command(
            "gitea-sso-reload",
            create=config.reload_command(self.container.name),
            environment={"DOCKER_HOST": self._host.host.url, config.RESULT_VARIABLE: step.output},
            triggers=[script, login.client_secret],
            opts=self.child(depends_on=[step.command]),
        )
