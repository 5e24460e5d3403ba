"""Edge kind `cache`: an app uses its own Redis user and logical database."""

from __future__ import annotations

import pulumi

from components.base import IntegrationEdge, Service
from components.config.redis import redis_url
from components.services.redis import Redis, RedisUser


class CacheEdge(IntegrationEdge):
    """The consumer's side of its cache: credentials for its container, ready once Redis is healthy.

    The user and its database number are created by Redis from its list of consumers.
    """

    kind = "cache"

    def __init__(self, consumer: Service, redis: Redis, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"cache-{consumer.service}", consumer, redis, opts)
        self.login: RedisUser = redis.user(consumer.service)
        self.register_outputs({"user": self.login.username, "db": self.login.db})

    def url(self) -> pulumi.Output[str]:
        """`redis://user:password@host:port/db`; secret, as it carries the password."""
        login = self.login
        return pulumi.Output.secret(login.password).apply(
            lambda password: redis_url(login.username, password, login.host, login.port, login.db)
        )

    def env(self, prefix: str, keys: dict[str, str]) -> list[pulumi.Input[str]]:
        """Environment entries `prefix+KEY=value` for the fields an app names its own way.

        `keys` maps the app's key to one of host, port, host_port, user, password, db, url.
        """
        login = self.login
        values: dict[str, pulumi.Input[str]] = {
            "host": login.host,
            "port": str(login.port),
            "host_port": f"{login.host}:{login.port}",
            "user": login.username,
            "password": login.password,
            "db": str(login.db),
            "url": self.url(),
        }
        return [pulumi.Output.concat(prefix, key, "=", values[field]) for key, field in keys.items()]
