"""The PITR agent (`components/config/pitr_agent.py`) run for real, as in a Patroni member: Debian's
python3 running the script file as `postgres`, with Debian's pgbackrest and PostgreSQL, the
repository passphrase only in its environment, and the config text and archive parameters that
`components/config/pgbackrest.py` renders (an encrypted posix repository in a temp dir).

The story: a primary archiving through pgBackRest into a repository with no stanza yet, and a
streaming standby (pg_basebackup -R). The primary's agent creates the stanza, takes a full backup,
then a diff once diff_every has passed since it; its metrics show both. The standby's agent reports
the same repository and takes nothing. `check-target` accepts a moment after the full backup and
refuses one before it and one in the future. With a wrong passphrase the agent reports the
repository down, says why, keeps running, and the repository is unchanged.

Needs: `apt-get install -y pgbackrest postgresql python3 util-linux`. Servers listen on 127.0.0.1
on free ports, sockets in a temp dir; everything started here is stopped in teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest

from components.config import pitr_agent
from components.config.pgbackrest import CIPHER_PASS_ENV, PgBackRestSettings, archive_parameters, info, pgbackrest_conf
from tests.components.config.stubs import stop_process
from tests.components.real_processes import Missing, as_postgres, binary, free_ports, postgres_bindir

TIMEOUT = 60  # seconds, for any one command, server start or awaited state
STANZA = "ceres-pg"
CIPHER_PASS = "agent pass'with $odd chars"
DIFF_EVERY_SECONDS = 4.0
PYTHON3 = "/usr/bin/python3"  # Debian's, as in the container (not the test venv's)


@dataclass
class Server:
    pg: Path
    root: Path
    settings: PgBackRestSettings
    process: subprocess.Popen | None = None

    def env(self, **overrides: str) -> dict[str, str]:
        # The server needs the passphrase: it runs archive_command with its own environment.
        return {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LC_ALL": "C", CIPHER_PASS_ENV: CIPHER_PASS, **overrides}

    def start(self, *, standby: bool) -> None:
        parameters = {"listen_addresses": "127.0.0.1", "port": str(self.settings.port),
                      "unix_socket_directories": self.settings.socket_dir, "fsync": "off",
                      **archive_parameters(self.settings)}
        argv = [str(self.pg / "postgres"), "-D", self.settings.data_dir]
        for key, value in parameters.items():
            argv += ["-c", f"{key}={value}"]
        log = self.root / f"server-{self.settings.port}.log"
        with open(log, "ab") as out:
            self.process = subprocess.Popen(as_postgres(argv), env=self.env(), stdout=out, stderr=subprocess.STDOUT)
        expected = "t" if standby else "f"
        wait_for(lambda: self.sql("SELECT pg_is_in_recovery()", check=False) == expected or self.process.poll() is not None,
                 f"PostgreSQL on {self.settings.port} in recovery={expected}", log)
        assert self.process.poll() is None, log.read_text()[-3000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run(as_postgres([str(self.pg / "pg_ctl"), "stop", "-D", self.settings.data_dir, "-m", "fast", "-w"]),
                           env=self.env(), capture_output=True, timeout=TIMEOUT)
        stop_process(self.process, TIMEOUT)

    def sql(self, sql: str, *, check: bool = True) -> str:
        result = subprocess.run(as_postgres([str(self.pg / "psql"), "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", self.settings.socket_dir,
                                             "-p", str(self.settings.port), "-d", "postgres", "-c", sql]),
                                env=self.env(), capture_output=True, text=True, timeout=TIMEOUT)
        assert not check or result.returncode == 0, f"{sql!r}: {result.stderr}"
        return result.stdout.strip()


def wait_for(condition: Callable[[], object], what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log and log.exists() else ""))
        time.sleep(0.2)


@dataclass
class Agent:
    """One `pitr_agent.py run`, as the postgres user, its stderr in a file."""

    process: subprocess.Popen
    port: int
    log: Path

    def metrics(self) -> dict[str, float] | None:
        """Samples by `name{labels}`; None while it does not answer yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except (urllib.error.URLError, ConnectionError):
            return None
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if not line.startswith("#")}

    def stderr(self) -> str:
        return self.log.read_text()

    def await_metrics(self, condition: Callable[[dict[str, float]], bool], what: str) -> dict[str, float]:
        seen: list[dict[str, float]] = []

        def met() -> bool:
            metrics = self.metrics()
            seen[:] = [metrics] if metrics else seen
            return metrics is not None and condition(metrics)

        wait_for(met, f"{what} (last metrics {seen})", self.log)
        return seen[0]


@dataclass
class Cluster:
    root: Path
    script: Path
    primary: Server
    standby: Server
    ports: list[int]
    agents: list[Agent]

    def agent(self, server: Server, *, passphrase: str = CIPHER_PASS, diff_every_seconds: float = DIFF_EVERY_SECONDS) -> Agent:
        port = self.ports.pop()
        log = self.root / f"agent-{port}.log"
        settings = server.settings
        argv = [PYTHON3, str(self.script), "run", f"--pgbackrest-config={settings.config_path}", f"--stanza={settings.stanza}",
                f"--listen=127.0.0.1:{port}", "--full-every-hours=1", f"--diff-every-hours={diff_every_seconds / 3600}",
                "--interval-seconds=0.5", f"--socket-dir={settings.socket_dir}", f"--port={settings.port}"]
        with open(log, "wb") as out:
            process = subprocess.Popen(as_postgres(argv), env=server.env(**{CIPHER_PASS_ENV: passphrase}),
                                       stdout=out, stderr=subprocess.STDOUT)
        self.agents.append(Agent(process, port, log))
        return self.agents[-1]

    def pgbackrest(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(as_postgres(list(argv)), env=self.primary.env(), capture_output=True, text=True,
                              errors="replace", timeout=TIMEOUT)

    def backups(self) -> list[dict]:
        result = self.pgbackrest(*info(self.primary.settings))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)[0]["backup"]

    def check_target(self, target: datetime) -> subprocess.CompletedProcess[str]:
        settings = self.primary.settings
        return self.pgbackrest(PYTHON3, str(self.script), "check-target", f"--pgbackrest-config={settings.config_path}",
                               f"--stanza={settings.stanza}", f"--target={target.isoformat()}")


def _programs() -> Path:
    for program in ("pgbackrest", "psql", "setpriv"):
        binary(program)  # Missing names the Debian package
    if not os.access(PYTHON3, os.X_OK):
        raise Missing(f"{PYTHON3} not found: apt-get install -y python3 (the container runs the agent with Debian's python3)")
    return postgres_bindir(("initdb", "postgres", "pg_ctl", "psql", "pg_basebackup"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    try:
        pg = _programs()
    except Missing as missing:
        pytest.fail(str(missing))
    # Not under pytest's tmp dir (root's, 0700): postgres must enter it; short, for the sockets.
    root = Path(tempfile.mkdtemp(prefix="ceres-agent-"))
    shutil.chown(root, "postgres", "postgres")
    # Copied next to the data, as into the container: postgres reads it, it imports nothing of ours.
    script = Path(shutil.copy(pitr_agent.__file__, root / "pitr_agent.py"))
    primary_port, standby_port, *agent_ports = free_ports(6)
    settings = PgBackRestSettings(stanza=STANZA, repository=f"{root}/repo", data_dir=f"{root}/primary", port=primary_port,
                                  socket_dir=str(root), config_path=f"{root}/primary.conf", lock_path=f"{root}/lock")
    # The standby's own config (its data dir and port), the same repository: as every member has.
    standby_settings = replace(settings, data_dir=f"{root}/standby", port=standby_port, config_path=f"{root}/standby.conf")
    for member in (settings, standby_settings):
        Path(member.config_path).write_text(pgbackrest_conf(member))
    for folder in (settings.repository, settings.lock_path):
        os.mkdir(folder, 0o750)
        shutil.chown(folder, "postgres", "postgres")
    primary, standby = Server(pg, root, settings), Server(pg, root, standby_settings)
    made = Cluster(root, script, primary, standby, agent_ports, [])
    try:
        subprocess.run(as_postgres([str(pg / "initdb"), "-D", settings.data_dir, "-U", "postgres", "--no-locale",
                                    "--auth-local=peer", "--auth-host=scram-sha-256"]),
                       env=primary.env(), check=True, capture_output=True, timeout=TIMEOUT)
        primary.start(standby=False)
        subprocess.run(as_postgres([str(pg / "pg_basebackup"), "-D", standby_settings.data_dir, "-R", "-X", "stream",
                                    "-h", settings.socket_dir, "-p", str(primary_port), "-U", "postgres"]),
                       env=primary.env(), check=True, capture_output=True, timeout=TIMEOUT)
        standby.start(standby=True)
        yield made
    finally:
        for agent in made.agents:
            stop_process(agent.process, 10)
        standby.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def leader_run(cluster: Cluster) -> tuple[Agent, dict[str, float]]:
    """The primary's agent, from an empty repository to a full then a diff backup; stopped after."""
    agent = cluster.agent(cluster.primary)
    metrics = agent.await_metrics(lambda m: 'ceres_pitr_last_backup_timestamp_seconds{type="diff"}' in m,
                                  "a full then a diff backup")
    stop_process(agent.process, TIMEOUT)  # before it takes the next diff
    return agent, metrics


def test_the_leaders_agent_creates_the_stanza_takes_a_full_then_a_diff_and_reports_them(
        cluster: Cluster, leader_run: tuple[Agent, dict[str, float]]) -> None:
    agent, metrics = leader_run
    full, diff = cluster.backups()[:2]
    assert (full["type"], diff["type"]) == ("full", "diff"), cluster.backups()
    # The diff waited for diff_every after the full (whole seconds, as pgBackRest records them).
    assert diff["timestamp"]["start"] >= full["timestamp"]["stop"] + DIFF_EVERY_SECONDS - 1
    assert metrics['ceres_pitr_last_backup_timestamp_seconds{type="full"}'] == full["timestamp"]["stop"]
    assert metrics['ceres_pitr_last_backup_timestamp_seconds{type="diff"}'] == diff["timestamp"]["stop"]
    assert metrics["ceres_pitr_oldest_restore_point_timestamp_seconds"] == full["timestamp"]["stop"]
    assert metrics["ceres_pitr_repository_up"] == 1 and metrics["ceres_pitr_leader"] == 1
    assert metrics["ceres_pitr_backups"] == 2 and metrics["ceres_pitr_backup_last_run_success"] == 1
    assert metrics["ceres_pitr_wal_archive_failing"] == 0
    assert metrics["ceres_pitr_wal_last_archived_timestamp_seconds"] >= full["timestamp"]["start"]
    log = agent.stderr()
    assert "this member leads" in log and "full backup done" in log and "diff backup done" in log, log
    assert "stopped" in log and agent.process.returncode == 0, "the agent did not stop cleanly on SIGTERM:\n" + log
    assert CIPHER_PASS not in log


def test_the_standbys_agent_reports_the_repository_and_takes_no_backup(
        cluster: Cluster, leader_run: tuple[Agent, dict[str, float]]) -> None:
    before = [b["label"] for b in cluster.backups()]
    agent = cluster.agent(cluster.standby, diff_every_seconds=0.01)  # a backup would be due at once
    agent.await_metrics(lambda m: "ceres_pitr_backups" in m, "the standby's first loop")
    time.sleep(2)  # a few more loops (0.5 s each) in which it could have backed up
    metrics = agent.metrics()
    assert metrics is not None
    assert metrics["ceres_pitr_leader"] == 0 and metrics["ceres_pitr_repository_up"] == 1
    assert metrics["ceres_pitr_backups"] == len(before)
    assert metrics['ceres_pitr_last_backup_timestamp_seconds{type="diff"}'] == leader_run[1]['ceres_pitr_last_backup_timestamp_seconds{type="diff"}']
    assert not any(name.startswith(("ceres_pitr_backup_last_run", "ceres_pitr_wal_")) for name in metrics), metrics
    assert [b["label"] for b in cluster.backups()] == before
    assert "does not lead" in agent.stderr() and "backup" not in agent.stderr().replace("no backups here", "")


def test_check_target_accepts_a_moment_after_the_full_backup_and_refuses_before_it_or_in_the_future(
        cluster: Cluster, leader_run: tuple[Agent, dict[str, float]]) -> None:
    full = cluster.backups()[0]
    stop = datetime.fromtimestamp(full["timestamp"]["stop"], timezone(timedelta(hours=2)))
    after = cluster.check_target(stop + timedelta(seconds=1.5))
    assert after.returncode == 0, after.stderr
    assert f"from full backup {full['label']}" in after.stdout

    earliest = datetime.fromtimestamp(full["timestamp"]["stop"] + 1, timezone.utc).isoformat(timespec="seconds")
    before = cluster.check_target(stop - timedelta(seconds=1))
    assert before.returncode == 2
    assert f"is before the oldest backup's end: restorable from {earliest} to now" in before.stderr, before.stderr
    future = cluster.check_target(datetime.now(timezone.utc) + timedelta(hours=1))
    assert future.returncode == 2
    assert f"is in the future: restorable from {earliest} to now" in future.stderr, future.stderr


def test_a_wrong_passphrase_shows_the_repository_down_says_why_and_the_agent_goes_on(
        cluster: Cluster, leader_run: tuple[Agent, dict[str, float]]) -> None:
    before = cluster.backups()
    agent = cluster.agent(cluster.primary, passphrase="not the passphrase", diff_every_seconds=0.01)
    metrics = agent.await_metrics(lambda m: "ceres_pitr_leader" in m, "the first loop")
    time.sleep(1.5)  # more loops: it must still be there
    assert agent.process.poll() is None, agent.stderr()
    metrics = agent.metrics() or metrics
    assert metrics["ceres_pitr_repository_up"] == 0 and metrics["ceres_pitr_leader"] == 1
    assert "ceres_pitr_backups" not in metrics and "ceres_pitr_backup_last_run_success" not in metrics
    log = agent.stderr()
    assert "repository NOT readable: status 99: [FormatError] unable to load info file" in log, log
    assert "(is PGBACKREST_REPO1_CIPHER_PASS the repository's passphrase?)" in log, log
    assert log.count("stanza-create failed") == 1, f"a repeated failure is said once:\n{log}"
    assert "not the passphrase" not in log and CIPHER_PASS not in log
    assert all(line.isprintable() for line in log.splitlines()), log
    assert cluster.backups() == before, "the repository changed under a wrong passphrase"
