"""Nextcloud: the platform's files, with a second container for its background jobs."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_keycloak as keycloak
from pulumi_keycloak import openid

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import nextcloud as config
from components.container import Healthcheck, ServiceContainer
from components.docker_host import DockerHostComponent
from components.integrations.cache import CacheEdge
from components.integrations.database import DatabaseEdge
from components.integrations.oidc import OidcClientEdge, OidcLogin, oidc_login
from components.services.postgres import PostgreSQL
from components.services.redis import Redis
from stacks.spec import StackSpec

DATA_VOLUME = "nextcloud-data"


class Nextcloud(Service):
    """Nextcloud behind Caddy at its public URL, installed on first start by the image from env.

    PostgreSQL when the db-nextcloud edge is on, SQLite otherwise; distributed cache and file
    locks in Redis when cache-nextcloud is on, APCu and the database otherwise. Background jobs
    run in cron mode from a second container of the same image on the same volume (`/cron.sh`,
    the image's documented way). With `sso`, people sign in through the realm (user_oidc); members
    of the platform's admin group join Nextcloud's `admin` group; the bootstrap admin stays local.
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
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("nextcloud", pulumi.ResourceOptions.merge(host.placed(), opts))
        self._host = host
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
        self.cron = self._cron(host, service.memory_mb, networks, job_envs)
        self.admin_username = config.ADMIN_USERNAME
        self.admin_password: pulumi.Output[str] = admin_password
        self.register_outputs({"url": self.url})

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

    def _cron(self, host: DockerHostComponent, memory_mb: int, networks: list[docker.Network],
              envs: list[pulumi.Input[str]]) -> docker.Container:
        """The image's `/cron.sh` (busybox crond running cron.php every 5 minutes as www-data).

        A plain container, not a ServiceContainer: it mounts the app's volume, which that class
        can only create, not share (see the report); the production shape is the same.
        """
        alias = "nextcloud-cron"
        return docker.Container(
            "nextcloud-cron",
            name=host.container_name("nextcloud_cron"),
            image=self.image.image_id,
            command=["/cron.sh"],
            envs=envs,
            # ServiceContainer names volumes `<prefix>-<volume>`: this is the app's own.
            volumes=[docker.ContainerVolumeArgs(volume_name=f"{host.prefix}-{DATA_VOLUME}", container_path=config.ROOT)],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=n.name, aliases=[alias]) for n in networks],
            # crond is PID 1, so the container stops with it; what else can be wrong is the volume:
            # healthy once it holds an installed Nextcloud for the jobs to run in.
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "test", "-f", f"{config.ROOT}/config/config.php"],
                interval="30s", timeout="5s", retries=3, start_period="30s",
            ),
            restart="unless-stopped",
            memory=memory_mb,
            wait=True,
            labels=[
                docker.ContainerLabelArgs(label="io.ceres.service", value="nextcloud"),
                docker.ContainerLabelArgs(label="io.ceres.stack", value=pulumi.get_stack()),
            ],
            opts=self.child(depends_on=[self.container.container, self.bootstrap.command], delete_before_replace=True),
        )
