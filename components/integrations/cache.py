"""Edge kind `cache`: an app uses its own Redis user and logical database."""

from __future__ import annotations

import pulumi

from components.base import IntegrationEdge, Service
from components.services.redis import Redis, RedisUser
from components.services.redis_cluster import RedisCluster


class CacheEdge(IntegrationEdge):
    """The consumer's side of its cache: credentials for its container, ready once Redis is healthy.

    The user and its database number are created by Redis from its list of consumers. With the
    HA tier, `redis` is the Sentinel cluster: the login points at HAProxy's primary endpoint, and
    the URL (for clients that speak Sentinel) at the Sentinels.
    """

    kind = "cache"

    def __init__(self, consumer: Service, redis: Redis | RedisCluster, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"cache-{consumer.service}", consumer, redis, opts)
        self._redis = redis
        self.login: RedisUser = redis.user(consumer.service)
        self.register_outputs({"user": self.login.username, "db": self.login.db})

    def url(self) -> pulumi.Output[str]:
        """The consumer's whole connection as a URL; secret, as it carries the password."""
        return self._redis.consumer_url(self.source.service)

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
