"""Nextcloud: the platform's files, with a second container for its background jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker
import pulumi_keycloak as keycloak
from pulumi_keycloak import openid

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import chat_relay
from components.config import nextcloud as config
from components.container import DEFAULT_STOP_GRACE_SECONDS, Healthcheck, ServiceContainer, SharedVolume, http_check
from components.docker_host import DockerHostComponent
from components.integrations.cache import CacheEdge
from components.integrations.chat import ChatWebhookEdge
from components.integrations.database import DatabaseEdge
from components.integrations.oidc import OidcClientEdge, OidcLogin, oidc_login
from components.services.postgres import PostgreSQL
from components.services.redis import Redis

from stacks.spec import ServiceSpec, StackSpec

if TYPE_CHECKING:
    from components.services.mattermost import Mattermost

DATA_VOLUME = "nextcloud-data"
# The chat relay's image. Kept here rather than in stacks/tiers.py because the relay is part of
# Nextcloud's chat edge, not a service of its own (see the report); bump with the stdlib it uses.
RELAY_IMAGE = "python:3.13.7-alpine3.22"
RELAY_MEMORY_MB = 64
WORKER_MEMORY_MB = 256
# Where Redmine's attachments volume appears in Nextcloud's containers (files-redmine).
REDMINE_FILES_DIR = "/srv/redmine-files"
# The folders every user sees. Not `/Projects`: that is where people keep their own project files
# (whose uploads the chat edge reports), and these are read-only.
REPOSITORIES_FOLDER = "/Repositories"
WIKI_FOLDER = "/Wiki"
REDMINE_FOLDER = "/Redmine files"


class Nextcloud(Service):
    """Nextcloud behind Caddy at its public URL, installed on first start by the image from env.

    PostgreSQL when the db-nextcloud edge is on, SQLite otherwise; distributed cache and file
    locks in Redis when cache-nextcloud is on, APCu and the database otherwise. Background jobs
    run in cron mode from a second container of the same image on the same volume (`/cron.sh`,
    the image's documented way). With `sso`, people sign in through the realm (user_oidc); members
    of the platform's admin group join Nextcloud's `admin` group; the bootstrap admin stays local.
    With `chat`, file events in the project folders reach the hub's `files` channel through
    webhook_listeners and a translating relay container (see `_chat`).

    Files from elsewhere, each folder read-only and shown to every user (files_external Local
    mounts, see config.folders_script): with `show_projects` (files-gitea) `/Repositories` shows the
    repo-sync worker's checkouts of the project repositories, with `show_wiki` (files-wikijs)
    `/Wiki` its checkout of the wiki's repository; both read the worker's volume, `repositories`,
    mounted read-only where the worker mounts it. With `redmine_files` (files-redmine, the name of
    Redmine's attachments volume) `/Redmine files` shows Redmine's attachments.
    """

    HTTP_PORT = 80

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL | None = None,
        redis: Redis | None = None,
        sso: bool = False,
        chat: Mattermost | None = None,
        repositories: SharedVolume | None = None,
        show_projects: bool = False,
        show_wiki: bool = False,
        redmine_files: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        folders, shared = self._shared_folders(repositories, show_projects, show_wiki, redmine_files)
        super().__init__("nextcloud", pulumi.ResourceOptions.merge(host.placed(), opts))
        self._host = host
        self._shared = shared
        self.oidc: OidcLogin | None = oidc_login(spec, self, config.SSO_CALLBACK_PATHS) if sso else None
        service = spec.services.nextcloud
        self.url = spec.public_url("nextcloud")
        public_host = self.url.removeprefix("https://")
        admin_password = self.generate_secret("nextcloud-admin-password")
        envs: list[pulumi.Input[str]] = [
            f"NEXTCLOUD_ADMIN_USER={config.ADMIN_USERNAME}",
            pulumi.Output.concat("NEXTCLOUD_ADMIN_PASSWORD=", admin_password),
            f"NEXTCLOUD_TRUSTED_DOMAINS={public_host}",
            # Behind Caddy, which terminates TLS: links, redirects and occ's URLs use the public one,
            # and Nextcloud (not Apache's remoteip) reads X-Forwarded-For from the proxy alone.
            "OVERWRITEPROTOCOL=https",
            f"OVERWRITEHOST={public_host}",
            f"OVERWRITECLIURL={self.url}",
            # Only Caddy's fixed address may set X-Forwarded-For: any other container on the
            # edge network could otherwise claim to be any client.
            f"TRUSTED_PROXIES={host.proxy_address}",
            "APACHE_DISABLE_REWRITE_IP=1",
        ]
        # What the background jobs need besides config.php on the shared volume.
        job_envs: list[pulumi.Input[str]] = []
        networks = [host.edge_network]
        depends_on: list[pulumi.Resource] = []
        if postgres is not None:
            self.database = DatabaseEdge(self, postgres)
            envs += self.database.env("", {
                "POSTGRES_HOST": "host_port", "POSTGRES_DB": "name", "POSTGRES_USER": "user", "POSTGRES_PASSWORD": "password",
            })
            depends_on.append(self.database.database.ready)
        else:
            # The image installs on SQLite when no database is named.
            envs.append("SQLITE_DATABASE=nextcloud")
        redis_connection = None
        if redis is not None:
            self.cache = CacheEdge(self, redis)
            login = self.cache.login
            redis_connection = config.RedisConnection(login.host, login.port, login.username, login.db)
            job_envs += self.cache.env("", {config.REDIS_PASSWORD_VARIABLE: "password"})
            depends_on.append(login.ready)
        if postgres is not None or redis is not None:
            networks.append(host.data_network)
        # Pulled here rather than by ServiceContainer: the cron container runs the same image.
        self.image = docker.RemoteImage("nextcloud-image", name=service.image, keep_locally=True, opts=self.child())
        self.container = ServiceContainer(
            self,
            "nextcloud",
            spec=service,
            host=host,
            image=self.image.image_id,
            networks=networks,
            envs=envs + job_envs,
            volumes={DATA_VOLUME: config.ROOT},
            shared_volumes=shared,
            # The apache image ships curl; status.php answers only for a trusted host name.
            # The first start installs Nextcloud before Apache listens: give it minutes.
            healthcheck=Healthcheck(
                ["CMD", "curl", "-fsS", "-o", "/dev/null", "-H", f"Host: {public_host}", f"http://localhost:{self.HTTP_PORT}/status.php"],
                start_period="300s", retries=10,
            ),
            depends_on=depends_on,
            wait_timeout=900,
        )
        self.bootstrap = ContainerScript(
            self,
            "nextcloud-bootstrap",
            container=self.container,
            host=host,
            script=config.bootstrap_script(config.Bootstrap(redis=redis_connection)),
            # occ must run as the owner of config.php.
            user="www-data",
        )
        self.cron = self._job_container(
            host, "nextcloud_cron", ["/cron.sh"], service.memory_mb, networks, job_envs, [self.bootstrap.command],
        )
        self.folders: ContainerScript | None = None
        if folders:
            self.folders = ContainerScript(
                self,
                "nextcloud-folders",
                container=self.container,
                host=host,
                script=config.folders_script(folders),
                user="www-data",
                depends_on=[self.bootstrap.command],
            )
        self.chat: ChatWebhookEdge | None = None
        if chat is not None:
            self._chat(chat, host, admin_password, networks, job_envs)
        self.admin_username = config.ADMIN_USERNAME
        self.admin_password: pulumi.Output[str] = admin_password
        self.register_outputs({"url": self.url})

    @staticmethod
    def _shared_folders(
        repositories: SharedVolume | None, show_projects: bool, show_wiki: bool, redmine_files: pulumi.Input[str] | None,
    ) -> tuple[tuple[config.ExternalFolder, ...], list[SharedVolume]]:
        """The folders to show and the volumes they read; a volume no folder reads stays unmounted."""
        folders: list[config.ExternalFolder] = []
        shared: list[SharedVolume] = []
        if show_projects or show_wiki:
            if repositories is None:
                raise ValueError("Nextcloud: the repository and wiki folders show the repo-sync worker's checkouts: "
                                 "pass repositories=SharedVolume(...) too")
            shared.append(repositories)
            if show_projects:
                folders.append(config.ExternalFolder(REPOSITORIES_FOLDER, f"{repositories.path}/files/projects"))
            if show_wiki:
                folders.append(config.ExternalFolder(WIKI_FOLDER, f"{repositories.path}/files/wiki"))
        if redmine_files is not None:
            shared.append(SharedVolume(name=redmine_files, path=REDMINE_FILES_DIR))
            folders.append(config.ExternalFolder(REDMINE_FOLDER, REDMINE_FILES_DIR))
        return tuple(folders), shared

    def apply_sso(self, edge: OidcClientEdge) -> None:
        """Nextcloud's admin role on the Keycloak side, then the user_oidc provider."""
        login = self.oidc
        realm = edge.target.realm
        on_realm = pulumi.ResourceOptions(parent=edge, provider=realm.provider, depends_on=[edge.client])
        # A client role named after Nextcloud's fixed `admin` group, held by the admin group and
        # sent, with the client's other roles, in a claim of its own (ID token and userinfo:
        # user_oidc reads the ID token).
        role = keycloak.Role(
            "nextcloud-admin-role", realm_id=realm.realm.id, client_id=edge.client.id, name=config.ADMIN_GROUP,
            description="Nextcloud administrator (member of Nextcloud's admin group)", opts=on_realm,
        )
        grant = keycloak.GroupRoles(
            "nextcloud-admin-role-grant", realm_id=realm.realm.id, group_id=realm.admins.id,
            role_ids=[role.id], exhaustive=False, opts=on_realm,
        )
        claim = openid.UserClientRoleProtocolMapper(
            "nextcloud-admin-role-claim", realm_id=realm.realm.id, client_id=edge.client.id, name=config.GROUPS_CLAIM,
            claim_name=config.GROUPS_CLAIM, client_id_for_role_mappings=login.client_id, multivalued=True,
            add_to_id_token=True, add_to_access_token=False, add_to_userinfo=True, opts=on_realm,
        )
        ContainerScript(
            self,
            "nextcloud-sso",
            container=self.container,
            host=self._host,
            script=config.sso_script(config.SsoProvider(client_id=login.client_id, discovery_url=login.discovery_url)),
            env={config.CLIENT_SECRET_VARIABLE: login.client_secret},
            user="www-data",
            depends_on=[edge.client, grant, claim, self.bootstrap.command],
        )

    def _chat(self, hub: Mattermost, host: DockerHostComponent, admin_password: pulumi.Output[str],
              networks: list[docker.Network], job_envs: list[pulumi.Input[str]]) -> None:
        """webhook_listeners -> relay -> the hub's `files` channel.

        Nextcloud sends each webhook from a background job (WebhookCall). The cron container runs
        jobs every 5 minutes, so messages would lag by up to 5 minutes; a dedicated
        `occ background-job:worker` for that job class alone picks them up within seconds.
        """
        self.chat = ChatWebhookEdge(self, hub, "files", username="Nextcloud")
        relay_secret = self.generate_secret("nextcloud-relay-secret")
        settings = chat_relay.RelaySettings(public_url=self.url, channel=self.chat.channel_name, username=self.chat.username)
        # The relay and the registration belong to the edge: they exist only for it.
        self.relay = ServiceContainer(
            self.chat,
            "nextcloud_relay",
            spec=ServiceSpec(enabled=True, image=RELAY_IMAGE, memory_mb=RELAY_MEMORY_MB),
            host=host,
            # Nextcloud (and its worker) reach it on the edge network; it reaches Mattermost there too.
            networks=[host.edge_network],
            command=["python", "/srv/ceres-relay.py"],
            user="65534:65534",
            files={"/srv/ceres-relay.py": chat_relay.relay_program(settings)},
            secret_files={settings.hook_url_file: self.chat.hook_url, settings.secret_file: relay_secret},
            # Stateless, so no volume. The alpine image's busybox has wget; the endpoint answers
            # without touching Mattermost, so a chat outage does not restart the relay.
            healthcheck=http_check(f"http://127.0.0.1:{settings.port}{chat_relay.HEALTH_PATH}", tool="wget"),
        )
        hooks = config.ChatHooks(
            relay_url=f"http://{self.relay.alias}:{settings.port}{chat_relay.NEXTCLOUD_PATH}",
            secret_header=chat_relay.SECRET_HEADER,
            public_host=self.url.removeprefix("https://"),
        )
        self.chat_hooks = ContainerScript(
            self.chat,
            "nextcloud-chat",
            container=self.container,
            host=host,
            script=config.chat_script(hooks),
            env={config.ADMIN_PASSWORD_VARIABLE: admin_password, config.RELAY_SECRET_VARIABLE: relay_secret},
            user="www-data",
            depends_on=[self.bootstrap.command, self.relay.container],
        )
        self.webhook_worker = self._job_container(
            host, "nextcloud_webhooks", ["php", f"{config.ROOT}/occ", "background-job:worker", config.WEBHOOK_JOB],
            WORKER_MEMORY_MB, networks, job_envs, [self.chat_hooks.command], user="www-data",
        )

    def _job_container(self, host: DockerHostComponent, name: str, command: list[str], memory_mb: int,
                       networks: list[docker.Network], envs: list[pulumi.Input[str]],
                       depends_on: list[pulumi.Resource], user: str | None = None) -> docker.Container:
        """A container of the app's image on the app's volume that runs background jobs: the image's
        `/cron.sh` (busybox crond running cron.php every 5 minutes as www-data), or an occ worker.

        A plain container, not a ServiceContainer: it mounts the app's volume, which that class
        can only create, not share (see the report); the production shape is the same.
        """
        alias = name.replace("_", "-")
        return docker.Container(
            alias,
            name=host.container_name(name),
            image=self.image.image_id,
            command=command,
            user=user,
            envs=envs,
            # ServiceContainer names volumes `<prefix>-<volume>`: this is the app's own.
            volumes=[
                docker.ContainerVolumeArgs(volume_name=f"{host.prefix}-{DATA_VOLUME}", container_path=config.ROOT),
                # Background jobs run in the same Nextcloud, so they see the same folders.
                *(volume.mount() for volume in self._shared),
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=n.name, aliases=[alias]) for n in networks],
            # The job runner is PID 1, so the container stops with it; what else can be wrong is the
            # volume: healthy once it holds an installed Nextcloud for the jobs to run in.
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "test", "-f", f"{config.ROOT}/config/config.php"],
                interval="30s", timeout="5s", retries=3, start_period="30s",
            ),
            restart="unless-stopped",
            memory=memory_mb,
            wait=True,
            # A background job gets as long to finish as every other service (see ServiceContainer).
            destroy_grace_seconds=DEFAULT_STOP_GRACE_SECONDS,
            labels=[
                docker.ContainerLabelArgs(label="io.ceres.service", value="nextcloud"),
                docker.ContainerLabelArgs(label="io.ceres.stack", value=pulumi.get_stack()),
            ],
            opts=self.child(depends_on=[self.container.container, *depends_on], delete_before_replace=True),
        )
