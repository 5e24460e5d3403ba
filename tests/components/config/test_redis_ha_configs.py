"""The rendered Redis HA configs, checked by the real programs.

- sentinel.conf: Redis has no config-check flag (7.0: no `--test-config`), so the real check is
  to run it: Debian's `redis-sentinel`, started by the rendered start script under `sh`, against
  real redis-servers with the rendered ACL users. It loads the file (a bad line exits at once),
  logs in on the primary (it finds the replica only through an authenticated INFO), finds its
  peers (hello messages over the primary's pub/sub, peers logged in with the peer user), and
  keeps its state and our settings, once each, across a restart.
- The HAProxy `redis_primary` section inside a minimal global/defaults: `haproxy -c` (Debian 2.6).
- The ACL users on the data nodes can do what the docs list for them and nothing else.

Debian packages: redis-server, redis-sentinel, haproxy (the test fails naming a missing one).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from components.config import haproxy_redis, redis_sentinel as ha
from components.config.redis_sentinel import (
    HAPROXY_USER,
    MASTER_NAME,
    REPLICATION_USER,
    SENTINEL_CLIENT_USER,
    SENTINEL_USER,
    Node,
    ReplicationSettings,
    SentinelSettings,
)
from tests.components.config.redis_ha_cluster import (
    Cluster,
    Missing,
    ReplyError,
    Resp,
    binary,
    login,
    minimal_haproxy_cfg,
    wait_for,
)
from tests.components.real_processes import started

PRIMARY, OTHER = Node("10.0.0.1", 6379), Node("10.0.0.2", 6379)
PASSWORDS = {user: f"pw-{user}-{os.urandom(4).hex()}" for user in (*ha.sentinel_login_users(), *ha.data_node_login_users())}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with started(Cluster.create) as cluster:
        yield cluster


# --- Sentinel, running -----------------------------------------------------------------------


def test_sentinels_load_the_config_log_in_and_find_each_other(cluster: Cluster) -> None:
    # Cluster.start waited for: each Sentinel lists 2 replicas (INFO on the primary as
    # ceres_sentinel) and 2 peers (hello over pub/sub, peers logged in as ceres_sentinel_peer).
    for index in range(3):
        assert cluster.sentinel_primary(index) == cluster.nodes[0]
        live = (cluster.root / f"sentinel{index}" / "sentinel.conf").read_text()
        assert f"sentinel down-after-milliseconds {MASTER_NAME} {ha.DOWN_AFTER_MS}" in live
        assert f"sentinel failover-timeout {MASTER_NAME} {ha.FAILOVER_TIMEOUT_MS}" in live
        assert f"sentinel monitor {MASTER_NAME} 127.0.0.1 {cluster.nodes[0].port} {ha.QUORUM}" in live
        base = (cluster.root / f"sentinel{index}" / "base.conf").read_text()
        assert not any(password in base for password in cluster.passwords.values())


def test_sentinel_lets_no_one_in_without_a_user_and_clients_only_look_up(cluster: Cluster) -> None:
    port = cluster.sentinels[0].port
    with Resp(port) as anonymous:
        with pytest.raises(ReplyError, match="NOAUTH"):
            anonymous.call("SENTINEL", "masters")
    with login(port, SENTINEL_CLIENT_USER, cluster.passwords[SENTINEL_CLIENT_USER]) as client:
        assert len(client.call("SENTINEL", "replicas", MASTER_NAME)) == 2
        for command in (["SENTINEL", "failover", MASTER_NAME], ["SENTINEL", "set", MASTER_NAME, "quorum", "1"],
                        ["SENTINEL", "reset", "*"], ["SENTINEL", "remove", MASTER_NAME], ["SENTINEL", "master", MASTER_NAME]):
            with pytest.raises(ReplyError, match="NOPERM"):
                client.call(*command)


def test_a_restart_keeps_sentinel_state_and_each_managed_line_once(cluster: Cluster) -> None:
    live = cluster.root / "sentinel0" / "sentinel.conf"
    myid = next(line for line in live.read_text().splitlines() if line.startswith("sentinel myid "))
    cluster.kill("sentinel0")
    cluster.processes["sentinel0"].start()
    wait_for(lambda: cluster.sentinel_primary(0) == cluster.nodes[0], "sentinel0 back", cluster)
    lines = live.read_text().splitlines()
    assert myid in lines
    for key in ("sentinel monitor ", "sentinel auth-pass ", "sentinel sentinel-pass ", "port ",
                "sentinel down-after-milliseconds ", "user ceres_sentinel_client "):
        assert sum(line.startswith(key) for line in lines) == 1, key
    assert oct(live.stat().st_mode & 0o777) == "0o600"


def test_the_start_script_is_valid_sh() -> None:
    script = ha.sentinel_start_script(SentinelSettings(primary=PRIMARY, announce=Node("10.0.0.9", 26379)))
    subprocess.run(["sh", "-n"], input=script, text=True, check=True, timeout=10)
    assert "live=/data/sentinel.conf\n" in script and 'exec redis-sentinel "$live"' in script


# --- the data nodes' users -------------------------------------------------------------------


def test_the_ha_users_have_only_their_documented_commands(cluster: Cluster) -> None:
    port = cluster.nodes[0].port
    for user in (SENTINEL_USER, REPLICATION_USER, HAPROXY_USER):
        with login(port, user, cluster.passwords[user]) as client:
            assert client.call("PING") == "PONG"
            for command in (["GET", "w:1"], ["SET", "k", "v"], ["CONFIG", "SET", "maxmemory", "1"], ["FLUSHALL"],
                            ["ACL", "LIST"]):
                with pytest.raises(ReplyError, match="NOPERM"):
                    client.call(*command)
    with login(port, HAPROXY_USER, cluster.passwords[HAPROXY_USER]) as check:
        assert "role:master" in check.call("INFO", "replication")
        with pytest.raises(ReplyError, match="NOPERM"):
            check.call("REPLICAOF", "NO", "ONE")
    with login(port, REPLICATION_USER, cluster.passwords[REPLICATION_USER]) as replication:
        with pytest.raises(ReplyError, match="NOPERM"):
            replication.call("INFO")


def test_replicas_log_in_with_the_secret_file_and_refuse_lagging_writes(cluster: Cluster) -> None:
    for index in (1, 2):
        node = cluster.node_info(index)
        assert node["role"] == "slave" and node["master_link_status"] == "up"
        conf = (cluster.root / f"redis{index}" / "redis.conf").read_text()
        assert cluster.passwords[REPLICATION_USER] not in conf.split("# Generated by CONFIG REWRITE")[0]
    with login(cluster.nodes[1].port, "nextcloud", cluster.passwords["nextcloud"]) as replica:
        with pytest.raises(ReplyError, match="READONLY"):
            replica.call("SET", "k", "v")


# --- HAProxy ---------------------------------------------------------------------------------


def haproxy_check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    try:
        haproxy = binary("haproxy")
    except Missing as missing:
        pytest.fail(str(missing))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), haproxy_redis.PASSWORD_ENV: "check-password"}
    return subprocess.run([haproxy, "-c", "-f", str(cfg)], env=env, capture_output=True, text=True, timeout=30)


def test_the_primary_section_passes_haproxy_c(tmp_path: Path) -> None:
    section = haproxy_redis.redis_primary_section(haproxy_redis.RedisPrimarySettings(
        nodes=(PRIMARY, OTHER, Node("redis-3.internal", 6379))))
    result = haproxy_check(tmp_path, minimal_haproxy_cfg(section))
    assert result.returncode == 0, result.stdout + result.stderr
    resolved = haproxy_redis.redis_primary_section(haproxy_redis.RedisPrimarySettings(
        nodes=(PRIMARY, Node("redis-3.internal", 6379)), resolvers="docker"))
    docker_dns = "resolvers docker\n    nameserver dns 127.0.0.11:53\n\n"
    result = haproxy_check(tmp_path, docker_dns + minimal_haproxy_cfg(resolved))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr
    # The check's password is only the variable's name, expanded by HAProxy at load time.
    assert f'"AUTH {HAPROXY_USER} ${{{haproxy_redis.PASSWORD_ENV}}}\\r\\n"' in section
    assert "role:master" in section and "mode tcp" in section and "on-marked-down shutdown-sessions" in section


def test_haproxy_c_catches_a_broken_section(tmp_path: Path) -> None:
    # The check above means something: a mangled line makes haproxy -c fail.
    section = haproxy_redis.redis_primary_section(haproxy_redis.RedisPrimarySettings(nodes=(PRIMARY, OTHER)))
    result = haproxy_check(tmp_path, minimal_haproxy_cfg(section.replace("tcp-check expect", "tcp-check expekt")))
    assert result.returncode != 0


# --- rendering rules (no server) -------------------------------------------------------------


def test_rendered_plain_text_holds_no_password() -> None:
    settings = SentinelSettings(primary=PRIMARY, announce=Node("10.0.0.9", 26379))
    plain = ha.sentinel_conf(settings) + ha.replica_conf_lines(ReplicationSettings(primary=PRIMARY, announce=OTHER))
    plain += ha.sentinel_start_script(settings)
    assert not any(password in plain for password in PASSWORDS.values())
    secret = ha.sentinel_secret_conf(settings, PASSWORDS) + ha.ha_acl_lines(PASSWORDS)
    # ACL lines carry digests only; Sentinel's own logins are the passwords it must send.
    for user in (ha.SENTINEL_PEER_USER, SENTINEL_CLIENT_USER, HAPROXY_USER, REPLICATION_USER):
        assert f"user {user} on #" in secret
    assert PASSWORDS[HAPROXY_USER] not in secret and PASSWORDS[REPLICATION_USER] not in secret


def test_the_shipped_settings() -> None:
    conf = ha.sentinel_conf(SentinelSettings(primary=PRIMARY, announce=Node("10.0.0.9", 26379)))
    assert f"sentinel monitor ceres 10.0.0.1 6379 2\n" in conf
    assert "sentinel down-after-milliseconds ceres 2000\n" in conf
    assert "sentinel announce-ip 10.0.0.9\n" in conf and "sentinel resolve-hostnames no\n" in conf
    named = ha.sentinel_conf(SentinelSettings(primary=Node("redis-1", 6379), announce=Node("sentinel-1", 26379)))
    assert "sentinel resolve-hostnames yes\n" in named and "sentinel announce-hostnames yes\n" in named
    replica = ha.replica_conf_lines(ReplicationSettings(primary=PRIMARY, announce=OTHER))
    assert "replicaof 10.0.0.1 6379\n" in replica and "min-replicas-to-write 1\n" in replica
    assert "replicaof" not in ha.replica_conf_lines(ReplicationSettings(primary=PRIMARY, announce=PRIMARY))


def test_rendering_refuses_unsafe_settings_and_missing_passwords() -> None:
    for bad in ({"quorum": 1}, {"down_after_ms": 500}, {"failover_timeout_ms": 3000}, {"master_name": "Bad name"}):
        with pytest.raises(ValueError):
            SentinelSettings(primary=PRIMARY, announce=OTHER, **bad)
    with pytest.raises(ValueError, match="ceres_sentinel_peer"):
        ha.sentinel_secret_conf(SentinelSettings(primary=PRIMARY, announce=OTHER),
                                {u: p for u, p in PASSWORDS.items() if u != ha.SENTINEL_PEER_USER})
    with pytest.raises(ValueError):
        ha.ha_acl_lines({})
    with pytest.raises(ValueError):
        haproxy_redis.RedisPrimarySettings(nodes=(PRIMARY,))
    with pytest.raises(ValueError):
        haproxy_redis.RedisPrimarySettings(nodes=(PRIMARY, OTHER), password_env="not-a-var")


def test_gitea_sentinel_url() -> None:
    url = ha.gitea_sentinel_url((Node("s1", 26379), Node("s2", 26379)), username="gitea", password="p@ss",
                                db=0, sentinel_password="s/pw")
    assert url == ("redis+sentinel://gitea:p%40ss@s1:26379,s2:26379/0?mastername=ceres"
                   "&sentinelusername=ceres_sentinel_client&sentinelpassword=s%2Fpw")
