"""Wiki.js: the platform's wiki."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import pulumi

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import wikijs as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.chat import ChatWebhookEdge
from components.integrations.database import DatabaseEdge
from components.integrations.git_storage import GitStorageEdge
from components.integrations.oidc import OidcClientEdge, OidcLogin, oidc_login
from components.providers import gitea as gitea_api
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec

if TYPE_CHECKING:
    from components.services.gitea import Gitea
    from components.services.mattermost import Mattermost


class WikiJs(Service):
    """Wiki.js 2.5 behind Caddy at its public URL; PostgreSQL when the db-wikijs edge is on, SQLite otherwise.

    Nobody clicks through its setup wizard: the bootstrap finishes it, turns the GraphQL API on
    and issues the API key the integrations use. With `sso`, people sign in through the realm
    (generic OpenID Connect strategy, groups mapped by name: the admin group's Wiki.js namesake
    holds manage:system); the local login stays as break-glass.

    With `gitea`, its pages live as Markdown in a Gitea repository (`wiki-git-storage`); with
    `chat` as well, that repository's push hook posts page edits to the dev channel as Wiki.js
    (`chat-wikijs`), since Wiki.js 2 has no webhooks of its own.
    """

    HTTP_PORT = 3000

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL | None,
        sso: bool = False,
        gitea: Gitea | None = None,
        chat: Mattermost | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("wikijs", pulumi.ResourceOptions.merge(host.placed(), opts))
        self._host = host
        self.url = spec.public_url("wikijs")
        self.oidc: OidcLogin | None = oidc_login(spec, self, (config.SSO_CALLBACK_PATH,)) if sso else None
        admin_password = self.generate_secret("wikijs-admin-password")
        envs: list[pulumi.Input[str]] = []
        secret_files: dict[str, pulumi.Input[str]] = {}
        networks = [host.edge_network]
        depends_on: list[pulumi.Resource] = []
        if postgres is not None:
            self.database = DatabaseEdge(self, postgres)
            envs += ["DB_TYPE=postgres", f"DB_PASS_FILE={config.DB_PASSWORD_FILE}"]
            envs += self.database.env("DB_", {"HOST": "host", "PORT": "port", "USER": "user", "NAME": "name"})
            secret_files[config.DB_PASSWORD_FILE] = self.database.database.password
            networks.append(host.data_network)
            depends_on.append(self.database.database.ready)
        else:
            # Wiki.js's embedded fallback: SQLite in a file on the data volume.
            envs += ["DB_TYPE=sqlite", f"DB_FILEPATH={config.SQLITE_PATH}"]
        self.container = ServiceContainer(
            self,
            "wikijs",
            spec=spec.services.wikijs,
            host=host,
            networks=networks,
            envs=envs,
            volumes={"wikijs-data": config.DATA_DIR, "wikijs-content": config.CONTENT_DIR},
            secret_files=secret_files,
            # The Alpine image installs curl. /healthz answers 200 both from the setup wizard (it
            # serves every GET) and from the wiki proper, so the bootstrap can run after `wait`.
            healthcheck=http_check(f"http://127.0.0.1:{self.HTTP_PORT}/healthz", tool="curl", start_period="90s"),
            depends_on=depends_on,
        )
        self.admin_email = pulumi.Output.secret(f"admin@{spec.domain}")
        self.bootstrap = bootstrap = ContainerScript(
            self,
            "wikijs-bootstrap",
            container=self.container,
            host=host,
            script=config.bootstrap_script(config.WikiJsBootstrap(site_url=self.url, port=self.HTTP_PORT)),
            env={
                config.ADMIN_EMAIL_VARIABLE: self.admin_email,
                config.ADMIN_PASSWORD_VARIABLE: admin_password,
            },
            secret_output=True,
        )
        self.admin_password = admin_password
        self.api_key = pulumi.Output.secret(bootstrap.output)
        self.domain = spec.domain
        self.verify_tls = spec.tls.mode != "internal"
        self.git_storage = GitStorageEdge(self, gitea) if gitea is not None else None
        self.chat: ChatWebhookEdge | None = None
        if chat is not None:
            if self.git_storage is None:
                raise ValueError("chat-wikijs posts through the wiki's Gitea repository: give gitea= as well")
            self.chat = ChatWebhookEdge(self, chat, "dev", username="Wiki.js")
            gitea_api.Webhook(
                "chat-wikijs-webhook", scope="repo", owner=self.git_storage.owner,
                repo=self.git_storage.repository_name, url=self.chat.hook_url, channel=self.chat.channel_name,
                events=["push"], username="Wiki.js", **gitea.api_access(),
                opts=pulumi.ResourceOptions(parent=self.chat, depends_on=[self.git_storage.repository]),
            )
        self.register_outputs({"url": self.url})

    def apply_sso(self, edge: OidcClientEdge) -> None:
        """The groups and the sign-in strategy, once the Keycloak client exists."""
        login = self.oidc
        back_home = quote(f"{login.app_url}/", safe="")
        sso = config.WikiJsSso(
            port=self.HTTP_PORT,
            client_id=login.client_id,
            authorization_url=login.auth_url,
            token_url=login.endpoint("token"),
            userinfo_url=login.endpoint("userinfo"),
            issuer=login.issuer_url,
            logout_url=f"{login.logout_url}?client_id={login.client_id}&post_logout_redirect_uri={back_home}",
            admin_group=login.admin_group,
            user_group=login.user_group,
        )
        ContainerScript(
            self,
            "wikijs-sso",
            container=self.container,
            host=self._host,
            script=config.sso_script(sso),
            env={
                config.ADMIN_EMAIL_VARIABLE: self.admin_email,
                config.ADMIN_PASSWORD_VARIABLE: self.admin_password,
                config.CLIENT_SECRET_VARIABLE: login.client_secret,
            },
            depends_on=[edge.client, self.bootstrap.command],
        )
