"""Whole-cluster point-in-time restore, run for real: 3 etcd + 3 Patroni members (Debian etcd-server,
patroni, postgresql, pgbackrest) from CERES' rendered configs, each member started through the
rendered entry script (`components/config/pitr_restore.py`) as the `postgres` user, archiving WAL
into an encrypted posix pgBackRest repository (passphrase in the members' environment).

Each member's entry script also starts the real pgBackRest agent (`components/config/pitr_agent.py`),
as in the containers: the leader's agent creates the stanza and takes the first full backup.

The story: the agent's full backup; rows A; note T; rows B; `check` (B's commit archived: recovery
to a time stops at the first commit after it). Then what
`ceres restore-pitr` does, step by step in Python: stop every member; delete the cluster's keys in
etcd with the real etcdctl; a `restore-to` request in one member's data volume (a former replica:
nothing of its own data is used); start it. It comes back as the Patroni leader with A and not B
and takes writes (C). The two others get a `reinitialise` request, start, clone from it, stream
from it and see C (so no recovery target survived into the copies). The new leader's agent takes
a full backup on the new timeline by itself. Finally a failed restore (a moment before any backup)
leaves the request in place, records why, and never starts Patroni.

Needs: `apt-get install -y etcd-server etcd-client patroni postgresql pgbackrest haproxy`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest

from components.config.patroni import PatroniMember
from components.config.pgbackrest import CIPHER_PASS_ENV, PgBackRestSettings, agent_command, check, info, pgbackrest_conf
from components.config.pitr_agent import parse_info
from components.config.pitr_restore import (
    LAST_RESULT,
    REINITIALISE_REQUEST,
    RESTORE_REQUEST,
    MemberEntrySettings,
    member_entry_script,
)
from tests.components.ha_cluster import CONSUMER, Connection, HaCluster, Member, PgError
from tests.components.real_processes import as_postgres, binary, free_ports, postgres_bindir, started

TIMEOUT = 120  # seconds, for any one command, a restore or a clone
STANZA = "ceres-test"
CIPHER_PASS = "cluster repo pass'with $odd chars"
SCOPE_PREFIX = "/service/ceres-test/"


def _archive(member: PatroniMember, home: Path) -> PgBackRestSettings:
    """Each member's pgBackRest: its own config file and lock dir, one repository for all."""
    repository = home.parent / "repo"
    for folder in (repository, home / "lock"):
        folder.mkdir(mode=0o750, exist_ok=True)
        shutil.chown(folder, "postgres", "postgres")
    settings = PgBackRestSettings(
        stanza=STANZA, repository=str(repository), data_dir=str(home / "data"), port=member.postgres.port,
        socket_dir=str(home), config_path=str(home / "pgbackrest.conf"), lock_path=str(home / "lock"),
        archive_timeout_seconds=5)
    Path(settings.config_path).write_text(pgbackrest_conf(settings))
    return settings


def _requests(member: Member) -> Path:
    return Path(member.settings.data_dir).parent / "ceres-restore"


AGENT_SOURCE = Path(__file__).resolve().parents[3] / "components" / "config" / "pitr_agent.py"


def _launch(cluster_bindir: str):
    agent_ports: dict[str, int] = {}

    def launch(member: Member) -> list[str]:
        """The rendered entry script, which starts the agent and execs Patroni with the member's config."""
        archive = member.settings.pgbackrest
        script_copy = member.config_path.parent / "pitr_agent.py"  # where postgres can read it
        shutil.copy(AGENT_SOURCE, script_copy)
        port = agent_ports.setdefault(member.name, free_ports(1)[0])
        # Every second; never a differential backup: only the full ones this test is about.
        agent = agent_command(archive, listen_host="127.0.0.1", port=port, full_every_hours=1000,
                              diff_every_hours=1000, interval_seconds=1, script=str(script_copy))
        settings = MemberEntrySettings(
            pgbackrest=archive, patroni=(binary("patroni"), str(member.config_path)), agent=agent,
            data_dir=member.settings.data_dir, bin_dir=cluster_bindir, requests_dir=str(_requests(member)),
            recovery_timeout_seconds=TIMEOUT)
        script = member.config_path.parent / "entry.sh"
        script.write_text(member_entry_script(settings))
        shutil.chown(script, "postgres", "postgres")
        return ["/bin/sh", str(script)]
    return launch


def _make_cluster() -> HaCluster:
    for program in ("pgbackrest", "etcdctl"):
        binary(program)
    bindir = str(postgres_bindir(("postgres", "initdb", "pg_ctl", "psql")))
    return HaCluster(archive=_archive, launch=_launch(bindir), member_env={CIPHER_PASS_ENV: CIPHER_PASS})


@pytest.fixture(scope="module")
def cluster() -> Iterator[HaCluster]:
    with started(_make_cluster) as running:
        yield running


# --- helpers --------------------------------------------------------------------------------------


def pgbackrest(member: Member, argv: list[str]) -> str:
    result = subprocess.run(as_postgres(argv), capture_output=True, text=True, errors="replace", timeout=TIMEOUT,
                            env={"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", CIPHER_PASS_ENV: CIPHER_PASS})
    assert result.returncode == 0, f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def superuser_sql(member: Member, sql: str) -> str:
    """As `postgres` over the member's socket (peer), as `docker exec -u postgres <c> psql` does."""
    result = subprocess.run(
        as_postgres([binary("psql"), "-X", "-At", "-q", "-h", member.settings.socket_dir,
                     "-p", str(member.settings.member.postgres.port), "-d", CONSUMER, "-c", sql]),
        capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"], "PGCONNECT_TIMEOUT": "5"})
    assert result.returncode == 0, f"{sql!r} on {member.name}: {result.stderr}"
    return result.stdout.strip()


def member_sql(cluster: HaCluster, member: Member, sql: str) -> list[str]:
    """As the consumer, straight to one member (a replica answers reads)."""
    connection = Connection(cluster.conninfo(port=member.settings.member.postgres.port))
    try:
        return connection.execute(sql)
    finally:
        connection.close()


def etcdctl(cluster: HaCluster, *args: str) -> str:
    endpoint = cluster.etcd_members[0].client_url
    result = subprocess.run([binary("etcdctl"), f"--endpoints={endpoint}", *args], capture_output=True, text=True,
                            timeout=30, env={"PATH": os.environ["PATH"], "ETCDCTL_API": "3"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def request(member: Member, name: str, text: str = "") -> Path:
    """As `docker cp` leaves it: a root-owned file in the postgres-owned requests dir."""
    path = _requests(member) / name
    path.write_text(text)
    return path


def full_backups(member: Member) -> list:
    return [b for b in parse_info(pgbackrest(member, info(member.settings.pgbackrest)), STANZA).backups if b.type == "full"]


def server_now(cluster: HaCluster, leader: Member) -> datetime:
    text = member_sql(cluster, leader, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")[0]
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def batches(cluster: HaCluster, member: Member) -> list[str]:
    return member_sql(cluster, member, "SELECT batch || ':' || count(*) FROM events GROUP BY batch ORDER BY batch")


def wait_for(condition, what: str, cluster: HaCluster, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (PgError, AssertionError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f}s\n{cluster.logs(tail=40)}")


# --- the test -------------------------------------------------------------------------------------


def test_restores_the_whole_cluster_to_a_moment_and_refuses_one_before_any_backup(cluster: HaCluster) -> None:
    started_at = time.monotonic()
    leader = cluster.wait_for_leader()
    for member in cluster.members:
        assert _requests(member).is_dir(), f"the entry script did not make {member.name}'s requests dir"
    # The leader's agent makes the stanza and takes the first full backup; no other agent backs up.
    first = wait_for(lambda: full_backups(leader), "the leader's agent took no full backup", cluster)
    assert len(first) == 1 and first[0].timeline == 1

    member_sql(cluster, leader, "CREATE TABLE events (id int PRIMARY KEY, batch text NOT NULL)")
    time.sleep(1.1)  # T in a later second than the backup's stop: pgBackRest compares whole seconds
    member_sql(cluster, leader, "INSERT INTO events SELECT g, 'A' FROM generate_series(1, 100) g")
    target = server_now(cluster, leader)
    time.sleep(0.05)
    member_sql(cluster, leader, "INSERT INTO events SELECT g, 'B' FROM generate_series(101, 200) g")
    member_sql(cluster, leader, "UPDATE events SET batch = 'B' WHERE id = 1")
    pgbackrest(leader, check(leader.settings.pgbackrest))  # B's commit archived
    old_timeline = superuser_sql(leader, "SELECT timeline_id FROM pg_control_checkpoint()")
    system_id = superuser_sql(leader, "SELECT system_identifier FROM pg_control_system()")

    # --- what `ceres restore-pitr` does ---
    chosen = next(m for m in cluster.members if m is not leader)
    for member in [m for m in cluster.members if m is not leader] + [leader]:
        cluster.stop_member(member)
    assert etcdctl(cluster, "get", "--prefix", "--keys-only", SCOPE_PREFIX).strip(), "Patroni left no keys to clear?"
    etcdctl(cluster, "del", "--prefix", SCOPE_PREFIX)
    assert etcdctl(cluster, "get", "--prefix", "--keys-only", SCOPE_PREFIX).strip() == ""
    request(chosen, RESTORE_REQUEST, target.isoformat() + "\n")
    request(chosen, REINITIALISE_REQUEST)  # stale: the restore supersedes it
    cluster.start_member(chosen)

    new_leader = cluster.wait_for_leader(timeout=TIMEOUT)
    assert new_leader is chosen, f"{new_leader.name} leads, not the restored {chosen.name}"
    assert not (_requests(chosen) / RESTORE_REQUEST).exists() and not (_requests(chosen) / REINITIALISE_REQUEST).exists()
    result = (_requests(chosen) / LAST_RESULT).read_text()
    assert f"ok: restored to {target.isoformat()}" in result, result
    auto_conf = (Path(chosen.settings.data_dir) / "postgresql.auto.conf").read_text()
    assert "recovery_target" not in auto_conf and "restore_command" not in auto_conf, auto_conf
    assert wait_for(lambda: superuser_sql(chosen, "SELECT pg_is_in_recovery()") == "f", "restored member not primary", cluster)
    assert batches(cluster, chosen) == ["A:100"]
    assert member_sql(cluster, chosen, "SELECT batch FROM events WHERE id = 1") == ["A"]
    new_timeline = int(superuser_sql(chosen, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16)
    assert new_timeline > int(old_timeline), (old_timeline, new_timeline)
    # Patroni took the restored data dir over (no initdb, no clone): it wrote the initialize key
    # with that data dir's system identifier, the one the cluster had before.
    assert superuser_sql(chosen, "SELECT system_identifier FROM pg_control_system()") == system_id
    assert etcdctl(cluster, "get", "--print-value-only", SCOPE_PREFIX + "initialize").strip() == system_id
    # Alone in synchronous mode, Patroni keeps taking writes (not strict).
    member_sql(cluster, chosen, "INSERT INTO events SELECT g, 'C' FROM generate_series(1001, 1050) g")

    others = [m for m in cluster.members if m is not chosen]
    for member in others:
        request(member, REINITIALISE_REQUEST)
        cluster.start_member(member)
    cluster.wait_until_healthy(timeout=TIMEOUT)
    assert cluster.wait_for_leader() is chosen
    for member in others:
        assert not (_requests(member) / REINITIALISE_REQUEST).exists()
        assert wait_for(lambda m=member: batches(cluster, m) == ["A:100", "C:50"], f"{member.name} did not replay C", cluster)
        assert superuser_sql(member, "SELECT pg_is_in_recovery()") == "t"
        sender = superuser_sql(chosen, f"SELECT state FROM pg_stat_replication WHERE application_name = '{member.name}'")
        assert sender == "streaming", f"{member.name} is not streaming from {chosen.name}: {sender!r}"
        assert "recovery_target" not in (Path(member.settings.data_dir) / "postgresql.auto.conf").read_text()
    # Later writes still reach every replica: nothing stops their replay at the old target.
    member_sql(cluster, chosen, "INSERT INTO events VALUES (2000, 'D')")
    for member in others:
        wait_for(lambda m=member: member_sql(cluster, m, "SELECT count(*) FROM events WHERE batch = 'D'") == ["1"],
                 f"{member.name} did not replay D", cluster)
    # The new leader's agent sees the new timeline and takes a full backup on it by itself: a later
    # restore past this one's branch point starts from it.
    on_new_timeline = wait_for(lambda: [b for b in full_backups(chosen) if b.timeline == new_timeline],
                               "no full backup on the new timeline", cluster)
    assert len(on_new_timeline) == 1 and len(full_backups(chosen)) == 2
    pgbackrest(chosen, check(chosen.settings.pgbackrest))
    print(f"restore + clone + backup: {time.monotonic() - started_at:.1f}s since the test began")

    # --- a failed restore: a moment before any backup ---
    victim = others[0]
    cluster.stop_member(victim)
    pending = request(victim, RESTORE_REQUEST, "2000-01-01T00:00:00+00:00\n")
    cluster.start_member(victim)
    assert victim.process is not None
    code = victim.process.wait(timeout=TIMEOUT)
    log = victim.log_path.read_text(errors="replace")
    assert code != 0, log[-3000:]
    assert pending.exists(), "a failed restore must leave its request in place"
    outcome = (_requests(victim) / LAST_RESULT).read_text()
    assert "failed: pgbackrest restore to 2000-01-01T00:00:00+00:00 failed" in outcome, outcome
    assert "ceres-restore: FAILED" in log and "unable to find backup set" in log, log[-3000:]
    # Patroni never ran: nothing answers on the member's REST port.
    with pytest.raises(OSError):
        cluster.rest(victim, "/health")

    # What the restore command does to a member that still holds a failed request: an empty
    # restore-to (cancelled) and a reinitialise; it clones and rejoins.
    request(victim, RESTORE_REQUEST, "")
    request(victim, REINITIALISE_REQUEST)
    cluster.start_member(victim)
    cluster.wait_until_healthy(timeout=TIMEOUT)
    assert not pending.exists()
    wait_for(lambda: member_sql(cluster, victim, "SELECT count(*) FROM events WHERE batch = 'D'") == ["1"],
             f"{victim.name} did not rejoin", cluster)


# --- the script alone, with stand-ins for pgbackrest and Patroni ------------------------------------


def _stub_layout(tmp_path: Path) -> tuple[MemberEntrySettings, Path]:
    """The script with `patroni` and the agent as recording stand-ins and no PostgreSQL at all."""
    record = tmp_path / "ran.log"
    stand_in = tmp_path / "stand-in"
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {record}\n')
    stand_in.chmod(0o755)
    settings = MemberEntrySettings(
        pgbackrest=PgBackRestSettings(stanza="ceres-prod", data_dir=str(tmp_path / "volume/pgdata")),
        patroni=(str(stand_in), "patroni", "/etc/patroni/patroni.yml"),
        agent=(str(stand_in), "agent", "--target", "it's $HOME"),
        data_dir=str(tmp_path / "volume/pgdata"), requests_dir=str(tmp_path / "volume/ceres-restore"))
    return settings, record


def test_a_stop_during_the_restore_stops_pgbackrest_and_keeps_the_request(tmp_path: Path) -> None:
    """`docker stop` sends SIGTERM to the script (PID 1): it must end the running restore and exit,
    not sit out the grace period."""
    settings, record = _stub_layout(tmp_path)
    Path(settings.requests_dir).mkdir(parents=True)
    pending = Path(settings.requests_dir) / RESTORE_REQUEST
    pending.write_text("2026-11-26T10:00:00+00:00\n")
    bin_dir, pid_file = tmp_path / "bin", tmp_path / "pgbackrest.pid"
    bin_dir.mkdir()
    (bin_dir / "pgbackrest").write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    (bin_dir / "pgbackrest").chmod(0o755)
    script = tmp_path / "entry.sh"
    script.write_text(member_entry_script(settings))
    process = subprocess.Popen(["sh", str(script)], stderr=subprocess.PIPE, text=True,
                               env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        restore_pid = int(pid_file.read_text())
        process.terminate()
        assert process.wait(timeout=5) == 143
    finally:
        if process.poll() is None:
            process.kill()
    stopped = time.monotonic() + 5
    while Path(f"/proc/{restore_pid}").exists() and time.monotonic() < stopped:
        time.sleep(0.05)
    assert not Path(f"/proc/{restore_pid}").exists(), "pgbackrest kept running after the stop"
    assert pending.exists() and not record.exists(), "a stopped restore must keep its request and start nothing"
    assert "stopped during the restore" in process.stderr.read()


def _run_script(settings: MemberEntrySettings, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "entry.sh"
    script.write_text(member_entry_script(settings))
    return subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def test_without_a_request_it_starts_the_agent_and_execs_patroni(tmp_path: Path) -> None:
    settings, record = _stub_layout(tmp_path)
    assert subprocess.run(["sh", "-n"], input=member_entry_script(settings), text=True).returncode == 0
    result = _run_script(settings, tmp_path)
    assert result.returncode == 0, result.stderr
    time.sleep(0.2)  # the agent runs in the background
    assert sorted(record.read_text().splitlines()) == ["agent --target it's $HOME", "patroni /etc/patroni/patroni.yml"]
    assert Path(settings.requests_dir).is_dir()


def test_reinitialise_wipes_the_data_dir_and_records_it(tmp_path: Path) -> None:
    settings, record = _stub_layout(tmp_path)
    data = Path(settings.data_dir)
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("17")
    Path(settings.requests_dir).mkdir()
    (Path(settings.requests_dir) / REINITIALISE_REQUEST).write_text("")
    result = _run_script(settings, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not data.exists() and not (Path(settings.requests_dir) / REINITIALISE_REQUEST).exists()
    assert "ok: data dir wiped" in (Path(settings.requests_dir) / LAST_RESULT).read_text()
    assert "patroni /etc/patroni/patroni.yml" in record.read_text()


@pytest.mark.parametrize("target", ["2026-11-26 10:00:00", "yesterday+01:00", "2026-11-26"])
def test_a_target_without_offset_or_unreadable_fails_before_touching_anything(tmp_path: Path, target: str) -> None:
    settings, record = _stub_layout(tmp_path)
    Path(settings.requests_dir).mkdir(parents=True)
    pending = Path(settings.requests_dir) / RESTORE_REQUEST
    pending.write_text(target + "\n")
    result = _run_script(settings, tmp_path)
    assert result.returncode != 0
    assert pending.exists() and not record.exists(), "Patroni (or the agent) started after a failed request"
    assert "give an ISO-8601 moment with an offset" in (Path(settings.requests_dir) / LAST_RESULT).read_text()
    assert "ceres-restore: FAILED" in result.stderr
    assert not Path(settings.data_dir).exists()


def test_refuses_a_requests_dir_inside_the_data_dir() -> None:
    with pytest.raises(ValueError, match="outside data_dir"):
        MemberEntrySettings(pgbackrest=PgBackRestSettings(stanza="main"), patroni=("patroni",),
                            requests_dir="/var/lib/postgresql/data/pgdata/ceres-restore")
