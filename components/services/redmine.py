"""Redmine: the platform's project and issue tracker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_keycloak as keycloak
from pulumi_keycloak import openid

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import redmine as config
from components.container import ServiceContainer, SharedVolume, http_check
from components.docker_host import DockerHostComponent
from components.images import build_on_host
from components.integrations.chat import ChatWebhookEdge
from components.integrations.database import DatabaseEdge
from components.integrations.oidc import OidcClientEdge, OidcLogin, oidc_login
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec

if TYPE_CHECKING:
    from components.services.mattermost import Mattermost

FILES_VOLUME = "redmine-files"


class Redmine(Service):
    """Redmine behind Caddy at its public URL; PostgreSQL when the db-redmine edge is on, SQLite otherwise.

    The bootstrap replaces the default admin/admin password, turns on the REST API and the
    repository web service (for Gitea commit links), and hands out the admin's API key.

    With the sso-redmine edge, Redmine runs a derived image with the redmine_oauth plugin (see
    config.redmine for why that plugin) and signs people in through the realm. Members of the
    admin group are Redmine administrators, members of the user group plain users; the plugin
    sets the admin flag at every sign-in and refuses anyone in neither group. The local admin stays.

    With the chat-redmine edge, the derived image also carries redmine_messenger, configured at
    bootstrap to post new and updated tasks to the projects channel through Mattermost's hook.

    With `repositories` (the repo-sync worker's volume, mounted read-only where the worker mounts
    it, so a mirror's path is the same in both), `link_commits` turns commit messages into issue
    links and status changes (commits-redmine); `link_wiki` points every project at its Wiki.js
    space instead of Redmine's own wiki (wiki-redmine). `files_volume` is the attachments volume's
    name, for Nextcloud to show (files-redmine).
    """

    HTTP_PORT = 3000

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL | None,
        sso: bool = False,
        chat: Mattermost | None = None,
        repositories: SharedVolume | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("redmine", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.repositories = repositories
        self.url = spec.public_url("redmine")
        secret_key_base = self.generate_secret("redmine-secret-key-base", 64)
        admin_password = self.generate_secret("redmine-admin-password")
        sys_api_key = self.generate_secret("redmine-sys-api-key")
        envs: list[pulumi.Input[str]] = [pulumi.Output.concat("REDMINE_SECRET_KEY_BASE=", secret_key_base)]
        volumes = {FILES_VOLUME: config.FILES_DIR}
        networks = [host.edge_network]
        depends_on: list[pulumi.Resource] = []
        if postgres is not None:
            self.database = DatabaseEdge(self, postgres)
            envs += self.database.env("REDMINE_DB_", {
                "POSTGRES": "host", "PORT": "port", "DATABASE": "name", "USERNAME": "user", "PASSWORD": "password",
            })
            networks.append(host.data_network)
            depends_on.append(self.database.database.ready)
        else:
            # With no database named, the image's entrypoint falls back to SQLite in sqlite/.
            volumes["redmine-sqlite"] = config.SQLITE_DIR
        self.oidc: OidcLogin | None = None
        plugins: list[config.RedminePlugin] = []
        if sso:
            self.oidc = oidc_login(spec, self, (config.OAUTH_CALLBACK,))
            plugins.append(config.OAUTH)
        if chat is not None:
            plugins.append(config.MESSENGER)
        image: pulumi.Input[str] | None = None
        if plugins:
            image = self._build_image(spec, host, tuple(plugins))
            # The entrypoint runs plugin migrations only when asked to.
            envs.append("REDMINE_PLUGINS_MIGRATE=1")
        self.container = ServiceContainer(
            self,
            "redmine",
            spec=spec.services.redmine,
            host=host,
            image=image,
            # The edge network also reaches Keycloak's internal token and userinfo endpoints.
            networks=networks,
            envs=envs,
            volumes=volumes,
            # Redmine reads the repository mirrors the sync worker keeps (commits-redmine).
            shared_volumes=[repositories] if repositories is not None else [],
            # The image ships wget (no curl). /login renders through Rails and reads the database,
            # so it answers only once both work; the first start runs every migration first.
            healthcheck=http_check(f"http://127.0.0.1:{self.HTTP_PORT}/login", tool="wget", start_period="180s"),
            depends_on=depends_on,
        )
        self._host = host
        self.bootstrap = ContainerScript(
            self,
            "redmine-bootstrap",
            container=self.container,
            host=host,
            script=config.bootstrap_script(config.RedmineBootstrap.for_url(self.url)),
            env={
                config.ADMIN_PASSWORD_VARIABLE: admin_password,
                config.SYS_API_KEY_VARIABLE: sys_api_key,
            },
            user=config.CONTAINER_USER,
            secret_output=True,
        )
        self.chat: ChatWebhookEdge | None = None
        if chat is not None:
            self._post_to_chat(chat)
        self.admin_password = admin_password
        self.api_key = pulumi.Output.secret(self.bootstrap.output)
        self.sys_api_key = sys_api_key
        self.files_volume: pulumi.Output[str] = self.container.volumes[FILES_VOLUME].name
        self.register_outputs({"url": self.url})

    def link_commits(self, owner: pulumi.Resource) -> ContainerScript:
        """commits-redmine: the settings commit messages need (see config.commits_script), as a step
        under `owner` (the edge). The repositories themselves are the worker's to register."""
        if self.repositories is None:
            raise ValueError("commits-redmine: Redmine reads the mirrors from the repositories volume: "
                             "pass repositories=SharedVolume(...) to Redmine")
        return self._settings_step(owner, "redmine-commits", config.commits_script(config.CommitLinks()))

    def link_wiki(self, owner: pulumi.Resource, wiki_url: str) -> ContainerScript:
        """wiki-redmine: Redmine's wiki module off for new projects, and a `Wiki` link on every
        project's overview to `<wiki_url>/<project identifier>` (see config.wiki_script)."""
        return self._settings_step(owner, "redmine-wiki", config.wiki_script(config.WikiLinks(wiki_url=wiki_url)))

    def _settings_step(self, owner: pulumi.Resource, name: str, script: str,
                       env: dict[str, pulumi.Input[str]] | None = None) -> ContainerScript:
        # After the bootstrap: each `rails runner` loads the whole app, and the container's memory
        # limit is for all of them at once.
        return ContainerScript(owner, name, container=self.container, host=self._host, script=script, env=env,
                               user=config.CONTAINER_USER, depends_on=[self.bootstrap.command])

    def _post_to_chat(self, chat: Mattermost) -> None:
        """The chat-redmine edge: redmine_messenger's settings, the hook URL from the step's
        environment (it is a secret); a new hook URL changes the step's inputs and runs it again."""
        self.chat = ChatWebhookEdge(self, chat, "projects", username="Redmine")
        messenger = config.MessengerSettings(channel=self.chat.channel_name, username=self.chat.username)
        self._settings_step(self.chat, "redmine-chat", config.messenger_script(messenger),
                            env={config.CHAT_HOOK_VARIABLE: self.chat.hook_url})

    def _build_image(
        self, spec: StackSpec, host: DockerHostComponent, plugins: tuple[config.RedminePlugin, ...],
    ) -> pulumi.Output[str]:
        """Build the derived image on this host's engine; its content-addressed tag is what the
        container runs, so a changed Dockerfile replaces the container."""
        derived = config.DerivedImage(base_image=spec.services.redmine.image, plugins=plugins)
        return build_on_host(
            self, "redmine-plugins-image", service="redmine", host=host, tag=derived.tag(),
            files={"Dockerfile": config.dockerfile(derived)},
            # Named for sign-on when that was its only plugin: stacks built then keep their image.
            opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="redmine-sso-image")]),
        )

    def apply_sso(self, edge: OidcClientEdge) -> None:
        """Keycloak's side of the admin mapping, then the plugin's settings inside the container.

        The plugin reads roles from one claim and knows two names, `admin` and `user`: the
        redmine client gets those two roles, the platform's groups get one each, and a mapper puts
        the client's roles into the userinfo response as `redmine_roles`.
        """
        login = self.oidc
        realm = edge.target.realm
        on_client = pulumi.ResourceOptions(parent=edge, provider=realm.provider, depends_on=[edge.client])
        roles = {
            name: keycloak.Role(f"redmine-{name}-role", realm_id=realm.realm.id, client_id=edge.client.id, name=name,
                                opts=on_client)
            for name in (config.ADMIN_ROLE, config.USER_ROLE)
        }
        for group, role in ((realm.admins, config.ADMIN_ROLE), (realm.users, config.USER_ROLE)):
            keycloak.GroupRoles(
                f"redmine-{role}-group-role",
                realm_id=realm.realm.id, group_id=group.id, role_ids=[roles[role].id],
                # Other apps grant the same groups their own roles: manage only this one.
                exhaustive=False,
                opts=on_client,
            )
        openid.UserClientRoleProtocolMapper(
            "redmine-roles-claim",
            realm_id=realm.realm.id, client_id=edge.client.id, name=config.ROLES_CLAIM,
            claim_name=config.ROLES_CLAIM, client_id_for_role_mappings=login.client_id, multivalued=True,
            add_to_userinfo=True, add_to_access_token=True, add_to_id_token=False,
            opts=on_client,
        )
        plugin = config.OauthPlugin(
            client_id=login.client_id,
            site=login.internal_issuer_url,
            auth_endpoint=login.auth_url,
            token_endpoint=login.endpoint("token"),
            userinfo_endpoint=login.endpoint("userinfo"),
            logout_endpoint=config.logout_endpoint(login.logout_url, login.client_id, f"{login.app_url}/"),
        )
        # The secret is in the step's environment: a rotated one changes its inputs, and
        # pulumi-command runs `create` again (no `update` is given).
        ContainerScript(
            self,
            "redmine-sso",
            container=self.container,
            host=self._host,
            script=config.sso_script(plugin),
            env={config.CLIENT_SECRET_VARIABLE: login.client_secret},
            user=config.CONTAINER_USER,
            depends_on=[edge.client],
        )
