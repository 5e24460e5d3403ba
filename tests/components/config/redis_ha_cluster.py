"""A real Redis HA cluster from the rendered configs, on 127.0.0.1: 3 redis-server, 3 redis-sentinel
(started by the rendered start script under sh), 1 HAProxy with the rendered `redis_primary`
section. Used by test_redis_failover_real.py and scripts/bench_redis_failover.py.

Needs Debian's redis-server, redis-sentinel and haproxy. Every process is started here; files
live in one temp dir; `Cluster.stop()` kills them all and removes it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from components.config import haproxy_redis, redis, redis_sentinel as ha
# Missing is not used here: test_redis_cluster_start.py imports it, with `binary`, from this module.
from tests.components.real_processes import Missing, binary, free_ports  # noqa: F401

PROGRAMS = ("redis-server", "redis-sentinel", "haproxy")
CONSUMERS = ("gitea", "nextcloud")
TIMEOUT = 20


# --- a minimal RESP client (the venv has no redis package) -----------------------------------


class ReplyError(Exception):
    """An error reply (-ERR, -NOPERM, -READONLY, ...)."""


class Resp:
    def __init__(self, port: int, timeout: float = 2.0, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Resp":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, *args: object) -> None:
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))

    def read(self):
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            raise ReplyError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            if rest == "-1":
                return None
            data = self.file.read(int(rest) + 2)
            return data[:-2].decode()
        if kind == b"*":
            return None if rest == "-1" else [self.read() for _ in range(int(rest))]
        raise ConnectionError(f"unexpected reply {line!r}")

    def call(self, *args: object):
        self.send(*args)
        return self.read()


def login(port: int, user: str, password: str, timeout: float = 2.0) -> Resp:
    client = Resp(port, timeout)
    try:
        client.call("AUTH", user, password)
    except BaseException:
        client.close()
        raise
    return client


def info(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


# --- the cluster -----------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def kill(self) -> None:
        """SIGKILL: the tests crash Redis processes, and teardown need not wait for a clean exit."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=TIMEOUT)
        self.popen = None


@dataclass
class Cluster:
    root: Path
    passwords: dict[str, str]
    nodes: list[ha.Node]
    sentinels: list[ha.Node]
    haproxy_port: int
    down_after_ms: int = ha.DOWN_AFTER_MS
    processes: dict[str, Process] = field(default_factory=dict)

    @classmethod
    def create(cls, down_after_ms: int = ha.DOWN_AFTER_MS) -> "Cluster":
        for program in PROGRAMS:
            binary(program)
        users = (*redis.login_users(redis.RedisSettings(memory_mb=256, consumers=CONSUMERS)),
                 *ha.data_node_login_users(), *ha.sentinel_login_users())
        *servers, haproxy_port = free_ports(7)
        return cls(
            root=Path(tempfile.mkdtemp(prefix="ceres-redis-ha-")),
            passwords={user: os.urandom(16).hex() for user in dict.fromkeys(users)},
            nodes=[ha.Node("127.0.0.1", port) for port in servers[:3]],
            sentinels=[ha.Node("127.0.0.1", port) for port in servers[3:]],
            haproxy_port=haproxy_port,
            down_after_ms=down_after_ms,
        )

    # -- rendering, as production would -------------------------------------------------------

    def _write_node(self, index: int) -> Process:
        node = self.nodes[index]
        directory = self.root / f"redis{index}"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        settings = redis.RedisSettings(memory_mb=256, consumers=CONSUMERS)
        secret = directory / "replication.conf"
        secret.write_text(ha.replication_secret_conf(self.passwords[ha.REPLICATION_USER]))
        secret.chmod(0o600)
        replication = ha.ReplicationSettings(primary=self.nodes[0], announce=node, secret_file=str(secret))
        # The image's /data is pointed at the temp dir (Redis changes into `dir` while parsing).
        base = redis.redis_conf(settings).replace(f"dir {redis.DATA_DIR}\n", f"dir {directory / 'data'}\n")
        conf = directory / "redis.conf"
        if not conf.exists():
            conf.write_text(base + ha.replica_conf_lines(replication))
        acl = directory / "users.acl"
        acl.write_text(redis.acl_file(settings, self.passwords) + ha.ha_acl_lines(self.passwords))
        return Process(f"redis{index}", [binary("redis-server"), str(conf), "--bind", "127.0.0.1",
                                         "--port", str(node.port), "--aclfile", str(acl)],
                       directory / "server.log")

    def _write_sentinel(self, index: int) -> Process:
        directory = self.root / f"sentinel{index}"
        directory.mkdir(parents=True, exist_ok=True)
        settings = ha.SentinelSettings(primary=self.nodes[0], announce=self.sentinels[index],
                                       down_after_ms=self.down_after_ms, data_dir=str(directory))
        base, secret = directory / "base.conf", directory / "credentials.conf"
        base.write_text(ha.sentinel_conf(settings))
        secret.write_text(ha.sentinel_secret_conf(settings, self.passwords))
        secret.chmod(0o600)
        script = ha.sentinel_start_script(settings, base_file=str(base), secret_file=str(secret),
                                          live_file=str(directory / "sentinel.conf"),
                                          sentinel=binary("redis-sentinel"))
        return Process(f"sentinel{index}", ["sh", "-c", script], directory / "sentinel.log")

    def haproxy_cfg(self) -> str:
        section = haproxy_redis.redis_primary_section(haproxy_redis.RedisPrimarySettings(
            nodes=tuple(self.nodes), bind_host="127.0.0.1", port=self.haproxy_port))
        return minimal_haproxy_cfg(section)

    def _write_haproxy(self) -> Process:
        cfg = self.root / "haproxy.cfg"
        cfg.write_text(self.haproxy_cfg())
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               haproxy_redis.PASSWORD_ENV: self.passwords[ha.HAPROXY_USER]}
        return Process("haproxy", [binary("haproxy"), "-db", "-f", str(cfg)], self.root / "haproxy.log", env)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(3):
            self.start_node(index)
        for index in range(3):
            self.processes[f"sentinel{index}"] = process = self._write_sentinel(index)
            process.start()
        self.processes["haproxy"] = process = self._write_haproxy()
        process.start()
        self.wait_ready()

    def start_node(self, index: int) -> None:
        self.processes[f"redis{index}"] = process = self._write_node(index)
        process.start()
        wait_for(lambda: self.node_info(index) is not None, f"redis{index} to answer", self)

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def stop(self) -> None:
        """Kills every process and removes the temp dir."""
        for process in self.processes.values():
            process.kill()
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log.read_text(errors='replace')[-3000:]}"
                         for p in self.processes.values() if p.log.exists())

    # -- what the tests ask -------------------------------------------------------------------

    def node_info(self, index: int) -> dict[str, str] | None:
        try:
            with login(self.nodes[index].port, ha.HAPROXY_USER, self.passwords[ha.HAPROXY_USER], 1) as c:
                return info(c.call("INFO", "replication"))
        except (OSError, ConnectionError, ReplyError):
            return None

    def sentinel_call(self, index: int, *args: object):
        with login(self.sentinels[index].port, ha.SENTINEL_CLIENT_USER,
                   self.passwords[ha.SENTINEL_CLIENT_USER], 1) as c:
            return c.call(*args)

    def sentinel_primary(self, index: int) -> ha.Node | None:
        try:
            host, port = self.sentinel_call(index, "SENTINEL", "get-master-addr-by-name", ha.MASTER_NAME)
        except (OSError, ConnectionError, ReplyError, TypeError):
            return None
        return ha.Node(host, int(port))

    def wait_ready(self) -> None:
        def ready() -> bool:
            primary = self.node_info(0)
            if not primary or primary.get("connected_slaves") != "2":
                return False
            for index in range(3):
                try:
                    peers = self.sentinel_call(index, "SENTINEL", "sentinels", ha.MASTER_NAME)
                    replicas = self.sentinel_call(index, "SENTINEL", "replicas", ha.MASTER_NAME)
                except (OSError, ConnectionError, ReplyError):
                    return False
                if len(peers) != 2 or len(replicas) != 2:
                    return False
            return self.write_through_haproxy("ready", "1")
        wait_for(ready, "primary with 2 replicas, 3 Sentinels that know each other, HAProxy routing", self, 40)

    def app(self, consumer: str = "nextcloud", timeout: float = 2.0) -> Resp:
        client = login(self.haproxy_port, consumer, self.passwords[consumer], timeout)
        client.call("SELECT", redis.database_number(consumer))
        return client

    def write_through_haproxy(self, key: str, value: str) -> bool:
        try:
            with self.app() as c:
                return c.call("SET", key, value) == "OK"
        except (OSError, ConnectionError, ReplyError):
            return False


def minimal_haproxy_cfg(section: str) -> str:
    return "\n".join([
        "global",
        "    maxconn 200",
        "defaults",
        "    mode tcp",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout queue 5s",
        "",
        section,
    ])


def wait_for(predicate, what: str, cluster: Cluster | None = None, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout}s for {what}\n{cluster.logs() if cluster else ''}")


# --- the write load --------------------------------------------------------------------------


@dataclass
class Ack:
    id: int
    sent: float
    acked: float
    replicas: int


@dataclass
class WriteLoad:
    """One client writing through HAProxy: SET w:<id> then WAIT 1 (at least one replica has it).

    A write counts as acknowledged when SET said OK and WAIT reported a replica; `unconfirmed`
    holds ids whose SET said OK but no replica confirmed (WAIT timed out or the link died)."""

    cluster: Cluster
    acks: list[Ack] = field(default_factory=list)
    unconfirmed: list[int] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=TIMEOUT)

    def _run(self, max_seconds: float = 90) -> None:
        deadline = time.monotonic() + max_seconds
        next_id, client = 0, None
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            try:
                if client is None:
                    client = self.cluster.app(timeout=1.0)
                next_id += 1
                sent = time.monotonic()
                client.send("SET", f"w:{next_id}", next_id)
                client.send("WAIT", 1, 500)
                ok, replicas = client.read(), client.read()
                if ok == "OK" and replicas >= 1:
                    self.acks.append(Ack(next_id, sent, time.monotonic(), replicas))
                elif ok == "OK":
                    self.unconfirmed.append(next_id)
                time.sleep(0.005)  # about 150 writes a second: steady, and light on 2 shared cores
            except (OSError, ConnectionError, ReplyError, TypeError) as error:
                self.errors.append((time.monotonic(), f"{type(error).__name__}: {error}"))
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.05)
        if client is not None:
            client.close()

    def failover_seconds(self, killed_at: float) -> float:
        """Last acknowledged write before the kill to the first acknowledged write sent after it."""
        before = [a.acked for a in self.acks if a.acked <= killed_at]
        after = [a.acked for a in self.acks if a.sent > killed_at]
        if not before or not after:
            raise AssertionError(f"no acknowledged write {'before' if not before else 'after'} the kill")
        return min(after) - max(before)


def lost_writes(cluster: Cluster, ids: list[int]) -> list[int]:
    lost: list[int] = []
    with cluster.app(timeout=5) as client:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            values = client.call("MGET", *(f"w:{i}" for i in chunk))
            lost += [i for i, value in zip(chunk, values) if value != str(i)]
    return lost


@dataclass
class FailoverResult:
    seconds: float
    acknowledged: int
    lost: list[int]
    unconfirmed: int
    old_primary: ha.Node
    new_primary: ha.Node


def kill_primary_under_load(cluster: Cluster, warmup: float = 1.5, observe: float = 8.0) -> FailoverResult:
    """SIGKILL the primary (node 0) while WriteLoad runs; wait for writes to resume; count losses."""
    load = WriteLoad(cluster)
    load.start()
    try:
        time.sleep(warmup)
        killed_at = time.monotonic()
        cluster.kill("redis0")
        wait_for(lambda: any(a.sent > killed_at for a in load.acks), "a write acknowledged after the kill",
                 cluster, observe + 10)
        time.sleep(0.5)
    finally:
        load.stop()
    new_primary = None
    def sentinels_agree() -> bool:
        nonlocal new_primary
        views = {cluster.sentinel_primary(i) for i in range(3)}
        new_primary = views.pop() if len(views) == 1 else None
        return new_primary is not None and new_primary != cluster.nodes[0]
    wait_for(sentinels_agree, "all Sentinels to name the same new primary", cluster)
    return FailoverResult(
        seconds=load.failover_seconds(killed_at),
        acknowledged=len(load.acks),
        lost=lost_writes(cluster, [a.id for a in load.acks]),
        unconfirmed=len(load.unconfirmed),
        old_primary=cluster.nodes[0],
        new_primary=new_primary,
    )
