"""The HA data node's start script, run under `sh` with Debian's real `redis-server` on 127.0.0.1.

A primary and the node under test, both started by the rendered script from the rendered configs
(the single-Redis config + the replication lines, with the port, address and paths pointed at a
temp dir). The node is promoted and demoted the way Sentinel does it (SLAVEOF then CONFIG
REWRITE, as Sentinel's user) and restarted: it keeps the role the rewrite recorded, drops the
password the rewrite wrote in plain text, and takes a changed rendered setting.

Debian package: redis-server (the test fails naming it when missing).
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from components.config import redis, redis_sentinel as ha
from components.config.redis_cluster import DataNodeStart, data_node_start_script
from tests.components.config.redis_ha_cluster import Missing, ReplyError, binary, info, login, wait_for
from tests.support import free_port

USERS = (*redis.login_users(redis.RedisSettings(256, ("gitea",), monitoring=True)), *ha.data_node_login_users())
PASSWORDS = {user: f"pw-{user}-{os.urandom(6).hex()}" for user in USERS}


@dataclass
class Node:
    """One redis-server started by the rendered start script, from files under `root`."""

    root: Path
    port: int
    primary_port: int
    members: tuple[ha.Node, ...]
    maxmemory_mb: int = 64
    popen: subprocess.Popen[bytes] | None = None

    @property
    def live(self) -> Path:
        return self.root / "live.conf"

    def render(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        settings = redis.RedisSettings(self.maxmemory_mb * 2, ("gitea",), monitoring=True)
        secret, acl = self.root / "replication.conf", self.root / "users.acl"
        secret.write_text(ha.replication_secret_conf(PASSWORDS[ha.REPLICATION_USER]))
        acl.write_text(redis.acl_file(settings, PASSWORDS) + ha.ha_acl_lines(PASSWORDS))
        me, primary = ha.Node("127.0.0.1", self.port), ha.Node("127.0.0.1", self.primary_port)
        base = redis.redis_conf(settings) + ha.replica_conf_lines(
            ha.ReplicationSettings(primary=primary, announce=me, secret_file=str(secret)))
        for production, here in ((f"port {redis.PORT}", f"port {self.port}"), ("bind 0.0.0.0", "bind 127.0.0.1"),
                                 (f"dir {redis.DATA_DIR}", f"dir {self.root / 'data'}"),
                                 (f"aclfile {redis.ACL_FILE}", f"aclfile {acl}")):
            assert production in base
            base = base.replace(production, here)
        # Test pacing only: a full resync starts at once instead of after the default 5 s.
        (self.root / "base.conf").write_text(base + "repl-diskless-sync-delay 0\n")

    def script(self) -> str:
        return data_node_start_script(DataNodeStart(
            members=self.members, base_file=str(self.root / "base.conf"), live_file=str(self.live),
            server=binary("redis-server")))

    def start(self) -> None:
        self.render()
        with open(self.root / "server.log", "ab") as log:
            self.popen = subprocess.Popen(["sh", "-c", self.script()], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.replication() is not None, f"redis on {self.port} to answer", timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self.popen = None

    def restart(self) -> None:
        # As a crash: a SIGTERM right after a promotion waits for the first AOF rewrite.
        self.stop(signal.SIGKILL)
        self.start()

    def replication(self) -> dict[str, str] | None:
        try:
            with login(self.port, ha.HAPROXY_USER, PASSWORDS[ha.HAPROXY_USER], 1) as client:
                return info(client.call("INFO", "replication"))
        except (OSError, ConnectionError, ReplyError):
            return None

    def as_sentinel(self, *command: object) -> None:
        """What Sentinel sends to reconfigure a node: the role change, then CONFIG REWRITE."""
        with login(self.port, ha.SENTINEL_USER, PASSWORDS[ha.SENTINEL_USER]) as client:
            client.call("MULTI")
            client.call(*command)
            client.call("CONFIG", "REWRITE")
            replies = client.call("EXEC")
        assert replies == ["OK", "OK"], replies


@dataclass
class Pair:
    primary: Node
    node: Node


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    try:
        binary("redis-server")
    except Missing as missing:
        pytest.fail(str(missing))
    primary_port, port = free_port(), free_port()
    while port == primary_port:
        port = free_port()
    members = (ha.Node("127.0.0.1", primary_port), ha.Node("127.0.0.1", port))
    pair = Pair(Node(tmp_path / "primary", primary_port, primary_port, members),
                Node(tmp_path / "node", port, primary_port, members))
    try:
        pair.primary.start()
        pair.node.start()
        yield pair
    finally:
        pair.node.stop(signal.SIGKILL)
        pair.primary.stop(signal.SIGKILL)


def following(node: Node, port: int) -> bool:
    state = node.replication() or {}
    return state.get("role") == "slave" and state.get("master_port") == str(port) and state.get("master_link_status") == "up"


def test_the_script_is_valid_sh() -> None:
    script = data_node_start_script(DataNodeStart(members=(ha.Node("10.0.0.11", 6379), ha.Node("10.0.0.12", 6379))))
    subprocess.run(["sh", "-n"], input=script, text=True, check=True, timeout=10)
    assert script.endswith("exec docker-entrypoint.sh redis-server /data/redis.conf\n")
    assert "10\\.0\\.0\\.11 6379|10\\.0\\.0\\.12 6379" in script


def test_a_restarted_node_keeps_the_role_sentinel_gave_it_and_no_password(pair: Pair) -> None:
    node, primary = pair.node, pair.primary
    wait_for(lambda: following(node, primary.port), "the node to replicate from the first primary", timeout=10)
    assert (primary.replication() or {}).get("role") == "master"
    replication_password = PASSWORDS[ha.REPLICATION_USER]
    assert replication_password not in node.live.read_text()

    # Promoted, as Sentinel does in a failover: CONFIG REWRITE records it, and writes the
    # replication password it holds in memory back in plain text (what the rebuild drops).
    node.as_sentinel("SLAVEOF", "NO", "ONE")
    rewritten = node.live.read_text()
    assert "replicaof" not in rewritten and f'masterauth "{replication_password}"' in rewritten
    node.restart()
    assert node.replication()["role"] == "master", node.live.read_text()
    live = node.live.read_text()
    assert "replicaof" not in live and replication_password not in live
    assert f"include {node.root / 'replication.conf'}" in live

    # Demoted again: it comes back as the replica of the primary Sentinel named.
    node.as_sentinel("SLAVEOF", "127.0.0.1", primary.port)
    node.restart()
    wait_for(lambda: following(node, primary.port), "the node to follow the primary after a restart", timeout=10)
    assert f"replicaof 127.0.0.1 {primary.port}\n" in node.live.read_text()
    assert oct(node.live.stat().st_mode & 0o777) == "0o600"


def test_a_primary_that_is_no_member_gives_way_to_the_rendered_one_and_settings_apply(pair: Pair) -> None:
    node, primary = pair.node, pair.primary
    node.as_sentinel("SLAVEOF", "NO", "ONE")
    node.stop(signal.SIGKILL)
    # As if the recorded primary's host had been given another address.
    node.live.write_text(node.live.read_text() + "replicaof 127.0.0.1 1\n")
    node.maxmemory_mb = 48
    node.start()
    wait_for(lambda: following(node, primary.port), "the node to follow the rendered primary", timeout=10)
    with login(node.port, redis.MONITOR_USER, PASSWORDS[redis.MONITOR_USER]) as monitor:
        assert monitor.call("CONFIG", "GET", "maxmemory") == ["maxmemory", str(48 * 1024 * 1024)]
    live = node.live.read_text()
    assert live.count("replicaof ") == 1 and live.count("maxmemory ") == 1


def test_the_healthchecks_pass_on_a_real_node_and_sentinel_and_fail_without_the_password_or_the_primary(pair: Pair, tmp_path: Path) -> None:
    from components.services.redis_cluster import _ping, _replicating

    passwords = {**PASSWORDS, **{user: f"pw-{user}" for user in ha.sentinel_login_users() if user != ha.SENTINEL_USER}}
    port = free_port()
    settings = ha.SentinelSettings(primary=ha.Node("127.0.0.1", pair.primary.port), announce=ha.Node("127.0.0.1", port),
                                   data_dir=str(tmp_path))
    base, secret = tmp_path / "sentinel-base.conf", tmp_path / "sentinel-credentials.conf"
    base.write_text(ha.sentinel_conf(settings))
    secret.write_text(ha.sentinel_secret_conf(settings, passwords))
    script = ha.sentinel_start_script(settings, base_file=str(base), secret_file=str(secret),
                                      live_file=str(tmp_path / "sentinel.conf"), sentinel=binary("redis-sentinel"))
    with open(tmp_path / "sentinel.log", "ab") as log:
        sentinel = subprocess.Popen(["sh", "-c", script], stdout=log, stderr=subprocess.STDOUT)
    try:
        checks = [(_replicating(redis.HEALTHCHECK_USER, pair.node.port), passwords[redis.HEALTHCHECK_USER]),
                  (_replicating(redis.HEALTHCHECK_USER, pair.primary.port), passwords[redis.HEALTHCHECK_USER]),
                  (_ping(ha.SENTINEL_CLIENT_USER, port), passwords[ha.SENTINEL_CLIENT_USER])]

        def healthy(test: list[str], password: str) -> bool:
            assert test[0] == "CMD-SHELL"
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDISCLI_AUTH": password}
            return subprocess.run(["sh", "-c", test[1]], env=env, capture_output=True, timeout=10).returncode == 0

        for healthcheck, password in checks:
            wait_for(lambda: healthy(healthcheck.test, password), f"{healthcheck.test[1]} to pass", timeout=10)
            assert not healthy(healthcheck.test, "wrong-password")
        # A replica cut off from its primary answers PING, but is not ready for the next member.
        replica_ready = checks[0][0].test
        with login(pair.node.port, ha.SENTINEL_USER, PASSWORDS[ha.SENTINEL_USER]) as sentinel_login:
            sentinel_login.call("SLAVEOF", "127.0.0.1", str(free_port()))
            try:
                wait_for(lambda: not healthy(replica_ready, passwords[redis.HEALTHCHECK_USER]), "the cut-off replica to fail", timeout=10)
            finally:
                sentinel_login.call("SLAVEOF", "127.0.0.1", str(pair.primary.port))
        wait_for(lambda: healthy(replica_ready, passwords[redis.HEALTHCHECK_USER]), "the replica to be ready again", timeout=15)
    finally:
        sentinel.kill()
        sentinel.wait(timeout=10)
