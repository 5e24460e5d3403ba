"""Redis in the HA tier: a data node and a Sentinel on each of the first HA hosts.

Same interface as `Redis` (components/services/redis.py), so the composition and the cache edge
use either: `user(consumer)`, `monitoring_login()`, `consumer_url(consumer)`, `host_name`.
"""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.base import Service
from components.config import haproxy_redis, redis as config, redis_sentinel as ha
from components.config.redis_cluster import DataNodeStart, data_node_start_script
from components.container import KEEP_RUNNING_ON_RESTORE, Healthcheck, ServiceContainer
from components.docker_host import DockerHostComponent
from components.integrations.ha import HaEdge
from components.services.redis import RedisUser
from stacks.spec import StackSpec

# A Sentinel holds a few peers' and replicas' state: a fraction of a data node's memory.
SENTINEL_MEMORY_MB = 64


def _ping(user: str, port: int) -> Healthcheck:
    # The image ships redis-cli, which reads the password from REDISCLI_AUTH (never in argv) and
    # exits 0 even on an error reply, so the check looks for PONG.
    return Healthcheck(["CMD-SHELL", f"redis-cli -p {port} --user {user} --no-auth-warning ping | grep -qx PONG"])


def _replicating(user: str, port: int) -> Healthcheck:
    """A primary, or a replica whose link to its primary is up (synced and loaded): what the next
    member's update waits for. PING alone answers on a replica still syncing or cut off."""
    return Healthcheck(["CMD-SHELL", f"redis-cli -p {port} --user {user} --no-auth-warning info replication"
                                     " | grep -Eq '^(role:master|master_link_status:up)'"])


class RedisCluster(Service):
    """Member i (of the first `spec.ha.redis_sentinels` HA hosts): a data node (member 0 the first
    primary, the others its replicas) and a Sentinel; Sentinel moves the primary, HAProxy (built
    by the composition from `haproxy_section()`) routes the apps that cannot speak Sentinel to it.

    Every container uses its host's network (the members reach each other at the hosts'
    addresses) and publishes nothing else: the hosts' firewall keeps 6379, 26379 and HAProxy's
    6380 to the private network. Passwords are the same on every node (any may become primary).
    """

    def __init__(
        self,
        spec: StackSpec,
        hosts: Sequence[DockerHostComponent],
        consumers: tuple[str, ...],
        *,
        monitoring: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("redis", pulumi.ResourceOptions.merge(hosts[0].placed(), opts))
        # What a login waits for: the members, or the proxy in front of them (`serve_through`).
        self._entry: pulumi.Resource = self
        count = spec.ha.redis_sentinels
        if len(hosts) < count or count < 3:
            raise ValueError(f"redis: {count} Sentinels on {len(hosts)} HA hosts; need at least 3, one per host (quorum 2 of 3)")
        members = list(hosts[:count])
        unaddressed = [host.host.name for host in members if host.host.address is None]
        if unaddressed:
            raise ValueError(f"redis: HA hosts {unaddressed} have no `address`; the members reach each other at it")
        self._settings = config.RedisSettings(spec.services.redis.memory_mb, consumers, monitoring)
        self.nodes = tuple(ha.Node(host.host.address, config.PORT) for host in members)
        self.sentinels = tuple(ha.Node(host.host.address, ha.SENTINEL_PORT) for host in members)
        # dict.fromkeys: Sentinel's user on the data nodes is among both lists; one password each.
        users = dict.fromkeys((*config.login_users(self._settings), *ha.data_node_login_users(), *ha.sentinel_login_users()))
        self._passwords = {user: self.generate_secret(f"redis-{user}-password") for user in users}
        self.haproxy_check_password = self._passwords[ha.HAPROXY_USER]
        self.host_name = spec.ha.virtual_ip
        self.port = haproxy_redis.REDIS_PRIMARY_PORT
        # One member after the other, each once it runs: a change every member shares (redis.conf,
        # the image) then replaces one data node and one Sentinel at a time, so a primary and a
        # Sentinel quorum stay up throughout.
        self.members: list[_Member] = []
        for index, host in enumerate(members):
            previous = self.members[-1] if self.members else None
            self.members.append(_Member(
                self, spec, host, index,
                primary_node=self.members[0].data_node.container if previous else None,
                after=previous.sentinel.container if previous else None,
            ))
        HaEdge("ha-redis", self, "redis_sentinel", members=[f"{node.host}:{node.port}" for node in self.nodes])
        self.register_outputs({"consumers": list(consumers), "monitoring": monitoring,
                               "nodes": [f"{n.host}:{n.port}" for n in self.nodes],
                               "sentinels": [f"{n.host}:{n.port}" for n in self.sentinels]})

    def _secret_text(self, render) -> pulumi.Output[str]:
        return pulumi.Output.secret(pulumi.Output.all(**self._passwords).apply(render))

    def serve_through(self, proxy: pulumi.Resource) -> None:
        """Logins are ready once `proxy` (the HAProxy pair, which itself waits for this cluster) runs."""
        self._entry = proxy

    def _login(self, username: str, db: int | None) -> RedisUser:
        # Ready once every member runs (depending on a component waits for all it contains), or
        # once the proxy in front of them does.
        return RedisUser(self.host_name, self.port, username, self._passwords[username], db, self._entry)

    def user(self, consumer: str) -> RedisUser:
        """The consumer's login at HAProxy's primary endpoint (`virtual_ip:6380`)."""
        if consumer not in self._settings.consumers:
            raise KeyError(f"redis has no user for {consumer!r}; its consumers are {sorted(self._settings.consumers)}")
        return self._login(consumer, config.database_number(consumer))

    def monitoring_login(self) -> RedisUser:
        """The exporter's user, at the primary endpoint: it follows the primary across failovers."""
        if not self._settings.monitoring:
            raise KeyError("redis was built without monitoring=True, so it has no exporter user")
        return self._login(config.MONITOR_USER, None)

    def consumer_url(self, consumer: str) -> pulumi.Output[str]:
        """For clients that speak Sentinel (Gitea): `redis+sentinel://` over every Sentinel; secret."""
        login = self.user(consumer)
        return self._secret_text(lambda passwords: ha.gitea_sentinel_url(
            self.sentinels, username=consumer, password=passwords[consumer], db=login.db,
            sentinel_password=passwords[ha.SENTINEL_CLIENT_USER]))

    def haproxy_section(self) -> str:
        """HAProxy's `listen redis_primary` over the data nodes, on every address at port 6380."""
        return haproxy_redis.redis_primary_section(haproxy_redis.RedisPrimarySettings(nodes=self.nodes))


class _Member(pulumi.ComponentResource):
    """One HA host's data node and Sentinel; everything under it deploys to that host."""

    def __init__(self, cluster: RedisCluster, spec: StackSpec, host: DockerHostComponent, index: int,
                 primary_node: pulumi.Resource | None, after: pulumi.Resource | None):
        """`primary_node`: the first primary's data node (None on the member that runs it);
        `after`: the previous member's Sentinel, which this member's data node waits for."""
        name = f"redis-{host.host.name}"
        super().__init__("ceres:services:RedisMember", name, None,
                         pulumi.ResourceOptions(parent=cluster, provider=host.provider))
        node, primary = cluster.nodes[index], cluster.nodes[0]
        replication = ha.ReplicationSettings(primary=primary, announce=node)
        passwords = cluster._passwords
        self.data_node = ServiceContainer(
            self, f"{name}-data",
            spec=spec.services.redis, host=host, networks=[], host_network=True,
            labels=KEEP_RUNNING_ON_RESTORE,
            envs=[pulumi.Output.concat("REDISCLI_AUTH=", passwords[config.HEALTHCHECK_USER])],
            command=["sh", "-c", data_node_start_script(DataNodeStart(members=cluster.nodes))],
            volumes={f"{name}-data": config.DATA_DIR},
            # Plain: the password is in the included secret file, the users' passwords only as digests.
            files={config.CONFIG_FILE: config.redis_conf(cluster._settings) + ha.replica_conf_lines(replication)},
            secret_files={
                config.ACL_FILE: cluster._secret_text(
                    lambda p: config.acl_file(cluster._settings, p) + ha.ha_acl_lines(p)),
                ha.REPLICATION_SECRET_FILE: pulumi.Output.secret(passwords[ha.REPLICATION_USER]).apply(
                    ha.replication_secret_conf),
            },
            healthcheck=_replicating(config.HEALTHCHECK_USER, config.PORT),
            depends_on=[after] if after is not None else [],
        )
        sentinel = ha.SentinelSettings(primary=primary, announce=cluster.sentinels[index])
        self.sentinel = ServiceContainer(
            self, f"{name}-sentinel",
            spec=spec.services.redis.model_copy(update={"memory_mb": SENTINEL_MEMORY_MB}),
            host=host, networks=[], host_network=True,
            labels=KEEP_RUNNING_ON_RESTORE,
            envs=[pulumi.Output.concat("REDISCLI_AUTH=", passwords[ha.SENTINEL_CLIENT_USER])],
            # Run as redis: the start script writes Sentinel's own state file on the volume.
            user="redis",
            command=["sh", "-c", ha.sentinel_start_script(sentinel)],
            volumes={f"{name}-sentinel": ha.SENTINEL_DATA_DIR},
            files={ha.SENTINEL_BASE_FILE: ha.sentinel_conf(sentinel)},
            secret_files={ha.SENTINEL_SECRET_FILE: cluster._secret_text(lambda p: ha.sentinel_secret_conf(sentinel, p))},
            # The client user may PING (go-redis does before its lookups); the default user is off.
            healthcheck=_ping(ha.SENTINEL_CLIENT_USER, ha.SENTINEL_PORT),
            # Sentinel logs in on the first primary to learn the replicas and its peers; after its
            # own member's data node, to keep the members in order.
            depends_on=[self.data_node.container, *([primary_node] if primary_node is not None else [])],
        )
        self.register_outputs({"node": f"{node.host}:{node.port}"})
