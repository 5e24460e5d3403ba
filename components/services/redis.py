"""Redis: the platform's cache, one ACL user and one logical database per consumer."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.base import Service
from components.config import redis as config
from components.container import KEEP_RUNNING_ON_RESTORE, Healthcheck, ServiceContainer
from components.docker_host import DockerHostComponent
from stacks.spec import ServiceSpec


@dataclass(frozen=True)
class RedisUser:
    """What a consumer needs to connect: reachable on the data network under `host`.

    `db` is the consumer's own database number; None for a user that selects none (the exporter).
    """

    host: str
    port: int
    username: str
    password: pulumi.Output[str]
    db: int | None
    ready: pulumi.Resource


class Redis(Service):
    """The server and its users, all created here from the list of consumers.

    Users come from an ACL file uploaded as a secret file, holding only SHA-256 digests of the
    generated passwords: the server reads it at every start, so the file is the whole truth
    (no runtime `ACL SETUSER` step that could drift, no admin user kept around to run one).
    A new consumer or password replaces the container; the AOF on the volume keeps the data.
    """

    def __init__(
        self,
        spec: ServiceSpec,
        host: DockerHostComponent,
        consumers: tuple[str, ...],
        *,
        monitoring: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("redis", pulumi.ResourceOptions.merge(host.placed(), opts))
        settings = config.RedisSettings(memory_mb=spec.memory_mb, consumers=consumers, monitoring=monitoring)
        self._passwords = {
            user: self.generate_secret(f"redis-{user}-password")
            for user in config.login_users(settings)
        }
        acl_file = pulumi.Output.all(**self._passwords).apply(lambda passwords: config.acl_file(settings, passwords))
        self.container = ServiceContainer(
            self,
            "redis",
            spec=spec,
            host=host,
            labels=KEEP_RUNNING_ON_RESTORE,
            networks=[host.data_network],
            # redis-cli reads REDISCLI_AUTH, so the healthcheck's password is never in its argv.
            envs=[pulumi.Output.concat("REDISCLI_AUTH=", self._passwords[config.HEALTHCHECK_USER])],
            command=["redis-server", config.CONFIG_FILE],
            volumes={"redis-data": config.DATA_DIR},
            files={config.CONFIG_FILE: config.redis_conf(settings)},
            secret_files={config.ACL_FILE: acl_file},
            # The image ships redis-cli; it exits 0 even on an error reply, so the check looks for PONG.
            healthcheck=Healthcheck([
                "CMD-SHELL", f"redis-cli --user {config.HEALTHCHECK_USER} --no-auth-warning ping | grep -qx PONG",
            ]),
        )
        self.host_name = self.container.alias
        self._settings = settings
        self.register_outputs({"consumers": list(consumers), "monitoring": monitoring})

    def _login(self, username: str, db: int | None) -> RedisUser:
        return RedisUser(self.host_name, config.PORT, username, self._passwords[username], db, self.container.container)

    def user(self, consumer: str) -> RedisUser:
        if consumer not in self._settings.consumers:
            raise KeyError(f"redis has no user for {consumer!r}; its consumers are {sorted(self._settings.consumers)}")
        return self._login(consumer, config.database_number(consumer))

    def consumer_url(self, consumer: str) -> pulumi.Output[str]:
        """`redis://user:password@host:port/db`; secret, as it carries the password."""
        login = self.user(consumer)
        return pulumi.Output.secret(login.password).apply(
            lambda password: config.redis_url(login.username, password, login.host, login.port, login.db)
        )

    def monitoring_login(self) -> RedisUser:
        """The exporter's user: INFO, CONFIG GET, SLOWLOG, LATENCY, and no keys."""
        if not self._settings.monitoring:
            raise KeyError("redis was built without monitoring=True, so it has no exporter user")
        return self._login(config.MONITOR_USER, None)
