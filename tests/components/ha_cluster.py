"""A real PostgreSQL HA cluster on 127.0.0.1, run from CERES' rendered configs, for tests and the benchmark.

3 etcd (Debian `etcd-server`), 3 Patroni members (Debian `patroni` + `postgresql`, run as the
`postgres` user), one HAProxy (Debian `haproxy`). A write load goes through HAProxy's primary port
as an ordinary consumer role, recording every acknowledged id and when it was acknowledged.

Harness facts: PID 1 here does not reap orphans, and Patroni starts postgres detached, so a
SIGKILLed Patroni leaves postgres (and a killed postmaster leaves its backends) re-parented. The
process running this becomes a child subreaper and reaps those orphans itself.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import glob
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from components.config.haproxy import CheckTimings, HaproxySettings, haproxy_cfg
from components.config.patroni import (
    SUPERUSER,
    Address,
    EtcdMember,
    EtcdSettings,
    PatroniMember,
    PatroniSettings,
    etcd_args,
    patroni_yml,
)
from components.config.pgbackrest import PgBackRestSettings
from components.config.postgres import provision_sql
from tests.components.config.stubs import stop_process
from tests.components.real_processes import Missing, as_postgres, binary, free_ports, postgres_bindir

CONSUMER = "gitea"
STARTUP_SECONDS = 90


# --- orphans -------------------------------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap_orphans(keep: set[int]) -> None:
    """Collect zombie children we did not start ourselves (Popen waits for its own)."""
    me = str(os.getpid())
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.split("/")[2])
        if fields[0] == "Z" and fields[1] == me and pid not in keep:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


# --- a tiny libpq client (no Python driver needed: libpq5 comes with postgresql-client) -----------

_libpq = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
_libpq.PQconnectdb.restype = ctypes.c_void_p
_libpq.PQconnectdb.argtypes = [ctypes.c_char_p]
_libpq.PQstatus.argtypes = [ctypes.c_void_p]
_libpq.PQerrorMessage.restype = ctypes.c_char_p
_libpq.PQerrorMessage.argtypes = [ctypes.c_void_p]
_libpq.PQexec.restype = ctypes.c_void_p
_libpq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_libpq.PQresultStatus.argtypes = [ctypes.c_void_p]
_libpq.PQgetvalue.restype = ctypes.c_char_p
_libpq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_libpq.PQntuples.argtypes = [ctypes.c_void_p]
_libpq.PQclear.argtypes = [ctypes.c_void_p]
_libpq.PQfinish.argtypes = [ctypes.c_void_p]
_PGRES_COMMAND_OK, _PGRES_TUPLES_OK, _CONNECTION_OK = 1, 2, 0


class PgError(Exception):
    pass


class Connection:
    def __init__(self, conninfo: str):
        self._conn = _libpq.PQconnectdb(conninfo.encode())
        if _libpq.PQstatus(self._conn) != _CONNECTION_OK:
            message = _libpq.PQerrorMessage(self._conn).decode(errors="replace")
            self.close()
            raise PgError(message.strip())

    def execute(self, sql: str) -> list[str]:
        """Runs one statement; returns the first column of every row."""
        result = _libpq.PQexec(self._conn, sql.encode())
        try:
            if _libpq.PQresultStatus(result) not in (_PGRES_COMMAND_OK, _PGRES_TUPLES_OK):
                raise PgError(_libpq.PQerrorMessage(self._conn).decode(errors="replace").strip())
            return [_libpq.PQgetvalue(result, row, 0).decode() for row in range(_libpq.PQntuples(result))]
        finally:
            _libpq.PQclear(result)

    def close(self) -> None:
        if self._conn:
            _libpq.PQfinish(self._conn)
            self._conn = None


# --- the write load --------------------------------------------------------------------------------


@dataclass
class WriteLoad:
    """One client inserting increasing ids through HAProxy; reconnects at once after any error."""

    conninfo: str
    # Ids already in the table (from earlier runs) are never reused: a duplicate would read as an outage.
    first_id: int = 1
    acked: list[tuple[int, float, float]] = field(default_factory=list)  # (id, sent, acknowledged)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        next_id, connection = self.first_id, None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = Connection(self.conninfo)
                sent = time.monotonic()
                connection.execute(f"INSERT INTO load (id) VALUES ({next_id})")
                self.acked.append((next_id, sent, time.monotonic()))
                next_id += 1
                time.sleep(0.01)
            except PgError:
                self.errors += 1
                if connection is not None:
                    connection.close()
                    connection = None
                next_id += 1  # an unacknowledged id may or may not have landed: never reuse it
                time.sleep(0.05)
        if connection is not None:
            connection.close()

    def wait_for_acks_after(self, moment: float, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for _, sent, _ in self.acked if sent >= moment) >= count:
                return
            time.sleep(0.1)
        raise AssertionError(f"writes did not resume through HAProxy within {timeout:.0f}s")


# --- the cluster -------------------------------------------------------------------------------


@dataclass
class Member:
    name: str
    settings: PatroniSettings
    config_path: Path
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def api(self) -> str:
        return f"http://{self.settings.member.restapi}"

    def postmaster_pid(self) -> int | None:
        try:
            return int((Path(self.settings.data_dir) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class HaCluster:
    def __init__(self, *, synchronous_mode: bool = True, members: int = 3,
                 archive: Callable[[PatroniMember, Path], PgBackRestSettings] | None = None,
                 launch: Callable[[Member], list[str]] | None = None,
                 member_env: dict[str, str] | None = None):
        """`archive`: each member's pgBackRest settings (given the member and its home folder), for
        WAL archiving; `launch`: the argv that starts a member (run as postgres) instead of Patroni
        itself (e.g. an entry script that execs it); `member_env`: more environment for members."""
        self.archive, self.launch, self.member_env = archive, launch, dict(member_env or {})
        for program in ("etcd", "patroni", "haproxy", "setpriv", "psql"):
            binary(program)
        self.bindir = str(postgres_bindir(("postgres", "initdb", "pg_ctl", "psql")))
        # Short and outside pytest's root-only tmp dirs: postgres must enter it, sockets need short paths.
        self.root = Path(tempfile.mkdtemp(prefix="ceres-ha-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.synchronous_mode = synchronous_mode
        self.passwords = {
            "PATRONI_SUPERUSER_PASSWORD": secrets.token_hex(12),
            "PATRONI_REPLICATION_PASSWORD": secrets.token_hex(12),
            "PATRONI_REWIND_PASSWORD": secrets.token_hex(12),
            "PATRONI_RESTAPI_USERNAME": "ceres",
            "PATRONI_RESTAPI_PASSWORD": secrets.token_hex(12),
        }
        self.consumer_password = secrets.token_hex(12)
        self.etcd_processes: list[subprocess.Popen] = []
        self.haproxy: subprocess.Popen | None = None
        self._known: set[int] = set()
        self._reaping = threading.Event()
        self._reaper: threading.Thread | None = None
        ports = iter(free_ports(6 + 2 * members + 3))
        self.etcd_members = tuple(EtcdMember(f"etcd-{i}", "127.0.0.1", next(ports), next(ports)) for i in range(1, 4))
        patroni_members = tuple(
            PatroniMember(f"pg-{i}", Address("127.0.0.1", next(ports)), Address("127.0.0.1", next(ports)))
            for i in range(1, members + 1)
        )
        self.members = [self._member(m) for m in patroni_members]
        self.haproxy_settings = HaproxySettings(
            members=patroni_members, bind_host="127.0.0.1",
            primary_port=next(ports), replica_port=next(ports), stats_port=next(ports),
        )
        self.ttl = self.members[0].settings.timings.ttl

    def _member(self, member: PatroniMember) -> Member:
        home = self.root / member.name
        home.mkdir(mode=0o700)
        shutil.chown(home, "postgres", "postgres")
        settings = PatroniSettings(
            scope="ceres-test", member=member, etcd=tuple(m.client_address for m in self.etcd_members),
            memory_mb=256, consumers=(CONSUMER,), synchronous_mode=self.synchronous_mode,
            listen_host="127.0.0.1", data_dir=str(home / "data"), bin_dir=self.bindir,
            socket_dir=str(home), pgpass=str(home / "pgpass"),
            pgbackrest=self.archive(member, home) if self.archive else None,
        )
        config_path = home / "patroni.yml"
        config_path.write_text(patroni_yml(settings))
        shutil.chown(config_path, "postgres", "postgres")
        return Member(member.name, settings, config_path, home / "patroni.log")

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        become_subreaper()
        self._reaper = threading.Thread(target=self._reap_loop, daemon=True)
        self._reaper.start()
        for member in self.etcd_members:
            settings = EtcdSettings(cluster=self.etcd_members, member=member.name, cluster_token="ceres-test",
                                    data_dir=str(self.root / member.name), listen_host="127.0.0.1")
            log = open(self.root / f"{member.name}.log", "wb")
            self.etcd_processes.append(self._spawn([binary("etcd"), *etcd_args(settings)], log))
        for member in self.members:
            self.start_member(member)
        leader = self.wait_for_leader()
        self.wait_until_healthy()
        self._provision_consumer(leader)
        config = self.root / "haproxy.cfg"
        config.write_text(haproxy_cfg(self.haproxy_settings))
        self.haproxy = self._spawn([binary("haproxy"), "-db", "-f", str(config)], open(self.root / "haproxy.log", "wb"))
        self._wait_for_routing()

    def _spawn(self, argv: list[str], log, env: dict[str, str] | None = None) -> subprocess.Popen:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root,
                                   start_new_session=True)
        log.close()
        self._known.add(process.pid)
        return process

    def start_member(self, member: Member) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root / member.name), "LC_ALL": "C.UTF-8",
               **self.passwords, **self.member_env}
        argv = self.launch(member) if self.launch else [binary("patroni"), str(member.config_path)]
        member.process = self._spawn(as_postgres(argv),
                                     open(member.log_path, "ab"), env=env)

    def _reap_loop(self) -> None:
        while not self._reaping.is_set():
            reap_orphans(self._known)
            time.sleep(0.2)

    def stop(self) -> None:
        for member in self.members:
            self.stop_member(member)
        for process in [self.haproxy, *self.etcd_processes]:
            stop_process(process, timeout=10)
        time.sleep(0.5)
        reap_orphans(self._known)
        self._reaping.set()
        shutil.rmtree(self.root, ignore_errors=True)

    def stop_member(self, member: Member) -> None:
        """Patroni stopped (SIGTERM, SIGKILL if it hangs), then any postmaster it left behind, then
        whatever else the member started in its session (an entry script's background agent), as
        stopping its container would."""
        stop_process(member.process, timeout=20)
        postmaster = member.postmaster_pid()
        if postmaster is not None:
            try:
                os.kill(postmaster, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if member.process is not None:
            try:
                os.killpg(member.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def crash(self, member: Member) -> float:
        """Hard crash: SIGKILL the member's postmaster and its Patroni at the same moment."""
        postmaster = member.postmaster_pid()
        assert postmaster is not None and member.process is not None
        moment = time.monotonic()
        os.kill(postmaster, signal.SIGKILL)
        member.process.send_signal(signal.SIGKILL)
        member.process.wait(timeout=10)
        return moment

    def stop_gracefully(self, member: Member, grace: float = 120) -> float:
        """The member image's stop signal (SIGTERM) to its Patroni, and wait for it to exit (it
        stops PostgreSQL first)."""
        assert member.process is not None
        moment = time.monotonic()
        member.process.send_signal(signal.SIGTERM)
        member.process.wait(timeout=grace)
        return moment

    def cluster_state(self, member: Member) -> str:
        """pg_controldata's "Database cluster state" of a stopped member: `shut down` after a
        clean stop, `in production` after a crash (the next start runs crash recovery)."""
        result = subprocess.run(as_postgres([str(Path(self.bindir) / "pg_controldata"), member.settings.data_dir]),
                                capture_output=True, text=True, timeout=30, env={"LC_ALL": "C", "PATH": os.environ["PATH"]})
        assert result.returncode == 0, result.stderr
        return next(line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
                    if line.startswith("Database cluster state"))

    # --- REST ------------------------------------------------------------------------------------

    def rest(self, member: Member, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(member.api + path, method="POST" if body is not None else "GET")
        if body is not None:
            request.data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
            credentials = f"{self.passwords['PATRONI_RESTAPI_USERNAME']}:{self.passwords['PATRONI_RESTAPI_PASSWORD']}"
            request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
        try:
            # A switchover answers only once it is done (or given up).
            with urllib.request.urlopen(request, timeout=30 if body is not None else 3) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        try:
            return status, json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return status, {"text": raw.decode(errors="replace")}

    def cluster_view(self) -> list[dict]:
        for member in self.members:
            try:
                status, body = self.rest(member, "/cluster")
            except OSError:
                continue
            if status == 200:
                return body.get("members", [])
        return []

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def wait_for_leader(self, timeout: float = STARTUP_SECONDS, exclude: str | None = None) -> Member:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = [m["name"] for m in self.cluster_view() if m["role"] == "leader" and m["name"] != exclude]
            if leaders and self.member(leaders[0]).process.poll() is None:
                return self.member(leaders[0])
            time.sleep(0.5)
        raise AssertionError(f"no Patroni leader within {timeout:.0f}s\n{self.logs()}")

    def wait_until_healthy(self, timeout: float = STARTUP_SECONDS) -> None:
        """Every member running, one leader, and (in synchronous mode) a synchronous standby."""
        deadline = time.monotonic() + timeout
        view: list[dict] = []
        while time.monotonic() < deadline:
            view = self.cluster_view()
            roles = sorted(m["role"] for m in view)
            running = all(m.get("state") in ("running", "streaming") for m in view)
            lag_known = all(isinstance(m.get("lag", 0), int) for m in view)
            wanted = ["leader", "replica", "sync_standby"] if self.synchronous_mode else ["leader", "replica", "replica"]
            if running and lag_known and roles == wanted:
                return
            time.sleep(0.5)
        raise AssertionError(f"cluster not healthy within {timeout:.0f}s: {view}\n{self.logs()}")

    def sync_standby(self) -> str:
        return next(m["name"] for m in self.cluster_view() if m["role"] == "sync_standby")

    # --- SQL -------------------------------------------------------------------------------------

    def _provision_consumer(self, leader: Member) -> None:
        """What production does once per consumer: the single server's provisioning script, run as
        the superuser over the leader's local socket (peer auth; the superuser has no network rule)."""
        for sql in (provision_sql(CONSUMER),):
            result = subprocess.run(
                as_postgres([binary("psql"), "-q", "-h", leader.settings.socket_dir, "-p", str(leader.settings.member.postgres.port),
                             "-d", "postgres", "-U", SUPERUSER]),
                input=sql, text=True, capture_output=True, timeout=30,
                env={"PATH": os.environ["PATH"], "CERES_ROLE_PASSWORD": self.consumer_password, "PGCONNECT_TIMEOUT": "5"},
            )
            assert result.returncode == 0, result.stderr
        self.leader_sql(leader, f"CREATE TABLE load (id bigint PRIMARY KEY, at timestamptz DEFAULT now())", CONSUMER)

    def conninfo(self, port: int | None = None, host: str = "127.0.0.1") -> str:
        return (f"host={host} port={port or self.haproxy_settings.primary_port} dbname={CONSUMER} user={CONSUMER} "
                f"password={self.consumer_password} connect_timeout=2")

    def leader_sql(self, leader: Member, sql: str, dbname: str = CONSUMER) -> list[str]:
        connection = Connection(self.conninfo(port=leader.settings.member.postgres.port))
        try:
            return connection.execute(sql)
        finally:
            connection.close()

    def through_haproxy(self, sql: str) -> list[str]:
        connection = Connection(self.conninfo())
        try:
            return connection.execute(sql)
        finally:
            connection.close()

    def in_service(self) -> dict[str, set[str]]:
        """HAProxy's own view, from its stats CSV: the members each pool sends new connections to."""
        url = f"http://127.0.0.1:{self.haproxy_settings.stats_port}/stats;csv"
        with urllib.request.urlopen(url, timeout=2) as response:
            header, *rows = response.read().decode().splitlines()
        columns = header.lstrip("# ").split(",")
        pools: dict[str, set[str]] = {"postgres_primary": set(), "postgres_replicas": set()}
        for row in rows:
            entry = dict(zip(columns, row.split(",")))
            if entry["pxname"] in pools and entry["svname"] in {m.name for m in self.members} and entry["status"].startswith("UP"):
                pools[entry["pxname"]].add(entry["svname"])
        return pools

    def _wait_for_routing(self, timeout: float = 30) -> None:
        """Until HAProxy sends the primary port to the leader alone, and writes get through.

        HAProxy before 3.1 (no `init-state`) starts with every server in service until its first
        check says otherwise: for that moment a new connection on the primary port can reach a
        replica, and `on-marked-down shutdown-sessions` cuts it a fraction of a second later."""
        deadline, pools = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            leader = self.wait_for_leader(timeout=max(1.0, deadline - time.monotonic())).name
            try:
                pools = self.in_service()
                if pools["postgres_primary"] == {leader} and leader not in pools["postgres_replicas"]:
                    self.through_haproxy("SELECT 1")
                    return
            except (OSError, PgError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"HAProxy did not route the primary port to the leader alone within {timeout:.0f}s: "
                             f"{pools}\n{self.logs()}")

    def write_load(self) -> WriteLoad:
        highest = int(self.through_haproxy("SELECT coalesce(max(id), 0) FROM load")[0])
        return WriteLoad(self.conninfo(), first_id=highest + 1)

    def logs(self, tail: int = 25) -> str:
        parts = []
        for path in sorted(self.root.glob("*/patroni.log")) + [self.root / "haproxy.log"]:
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {path.name} ({path.parent.name})\n" + "\n".join(lines))
        return "\n".join(parts)


@dataclass
class FailoverResult:
    outage: float
    lost: list[int]
    new_leader: str
    # How the old leader's PostgreSQL was left (`cluster_state`), before it is started again.
    old_leader_state: str


def crash_leader_under_load(cluster: HaCluster, *, warmup: float = 2.0) -> FailoverResult:
    """Kill the leader (postgres and Patroni) under a steady write load; measure the outage and
    check every acknowledged id is on the new leader. The killed member is restarted afterwards
    and rejoins as a replica (pg_rewind if needed) so the next run starts from 3 healthy members."""
    return _leader_gone_under_load(cluster, cluster.crash, warmup)


def stop_leader_under_load(cluster: HaCluster, *, warmup: float = 2.0) -> FailoverResult:
    """Stop the leader as `docker stop` (or a replacement with a stop grace) does, under load:
    the member image's STOPSIGNAL, SIGTERM, to Patroni, which the image runs as PID 1."""
    return _leader_gone_under_load(cluster, cluster.stop_gracefully, warmup)


def _leader_gone_under_load(cluster: HaCluster, take_down: Callable[[Member], float], warmup: float) -> FailoverResult:
    leader = cluster.wait_for_leader()
    load = cluster.write_load()
    load.start()
    try:
        time.sleep(warmup)
        moment = take_down(leader)
        load.wait_for_acks_after(moment, count=20, timeout=cluster.ttl + 20)
    finally:
        load.stop()
    new_leader = cluster.wait_for_leader(exclude=leader.name)
    acked = {id_ for id_, _, _ in load.acked}
    present = set(int(v) for v in cluster.through_haproxy("SELECT id FROM load"))
    # The longest stretch without an acknowledgement, not the first write after the crash: a
    # backend of the killed postmaster (and its walsender) can still commit a write or two before
    # it notices, most often on a loaded machine.
    result = FailoverResult(longest_gap(load, moment), sorted(acked - present), new_leader.name,
                            cluster.cluster_state(leader))
    cluster.start_member(leader)
    cluster.wait_until_healthy()
    return result


def longest_gap(load: WriteLoad, since: float) -> float:
    """The longest stretch without an acknowledged write, from the last one before `since` on."""
    times = sorted(acked for _, _, acked in load.acked)
    start = max((t for t in times if t <= since), default=since)
    later = [t for t in times if t > start]
    return max((b - a for a, b in zip([start, *later], later)), default=0.0)


@dataclass
class SwitchoverResult:
    outage: float
    lost: list[int]
    old_leader: str
    new_leader: str


def switchover_under_load(cluster: HaCluster, *, warmup: float = 2.0, settle: float = 5.0) -> SwitchoverResult:
    """Planned switchover to the synchronous standby through Patroni's REST API (authenticated)."""
    leader = cluster.wait_for_leader()
    candidate = cluster.sync_standby() if cluster.synchronous_mode else next(m.name for m in cluster.members if m is not leader)
    load = cluster.write_load()
    load.start()
    try:
        time.sleep(warmup)
        moment = time.monotonic()
        status, body = cluster.rest(leader, "/switchover", {"leader": leader.name, "candidate": candidate})
        assert status == 200, f"switchover refused: {status} {body}"
        load.wait_for_acks_after(moment, count=20, timeout=30)
        time.sleep(settle)
    finally:
        load.stop()
    new_leader = cluster.wait_for_leader(exclude=leader.name)
    acked = {id_ for id_, _, _ in load.acked}
    present = set(int(v) for v in cluster.through_haproxy("SELECT id FROM load"))
    gap = longest_gap(load, moment)
    cluster.wait_until_healthy()
    return SwitchoverResult(gap, sorted(acked - present), leader.name, new_leader.name)
