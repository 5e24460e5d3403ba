"""Point-in-time recovery, run for real: Debian's pgbackrest and PostgreSQL, with the text and
commands `components/config/pgbackrest.py` renders (config file, archive parameters, stanza-create,
check, full and diff backup, point-in-time restore) and an encrypted repository.

The story: full backup; rows A0; diff backup; rows A; note T; rows B; `check` (switches WAL and
waits until it is archived); stop and wipe the data dir; restore to T; start. Rows A0 and A are
back, rows B are not, and the server is a primary on a new timeline.

Why a time target (not a txid): it is what an operator has ("just before the 14:05 deploy"), and
T comes from the server's own clock, as commit timestamps do, so no clock skew enters. Why
`check` after B (and not only a `pg_switch_wal()` before T): recovery to a time stops at the first
commit AFTER the target, so that commit (B's) must be in the archive; without it PostgreSQL 13+
refuses to finish ("recovery ended before configured recovery target was reached").

Needs: `apt-get install -y pgbackrest postgresql`. The server listens on 127.0.0.1 on a free port
with its socket in a temp dir, runs as `postgres`, and is stopped in teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest

from components.config.pgbackrest import (
    CIPHER_PASS_ENV,
    S3_KEY_ENV,
    S3_KEY_SECRET_ENV,
    PgBackRestSettings,
    S3Repository,
    archive_parameters,
    backup,
    check,
    info,
    pgbackrest_conf,
    point_in_time_restore,
    restore_command,
    stanza_create,
)
from tests.components.config.stubs import stop_process, with_overrides
from tests.components.real_processes import Missing, as_postgres, postgres_bindir
from tests.components.s3_store import ACCESS_KEY, REGION, SECRET_KEY, s3_store
from tests.support import free_port

TIMEOUT = 120  # seconds, for any one command or server start
INSTALL = "apt-get install -y pgbackrest postgresql"
STANZA = "ceres-pg"
CIPHER_PASS = "repo pass'with $odd chars"


@dataclass
class Server:
    """A throwaway PostgreSQL whose config and commands come from the renderer."""

    pg: Path
    root: Path
    settings: PgBackRestSettings
    # The S3 keys, when the repository is a bucket: like the passphrase, only ever in the environment.
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return Path(self.settings.data_dir)

    def env(self, **overrides: str | None) -> dict[str, str]:
        # The server gets the passphrase too: it runs archive_command with its own environment.
        return with_overrides({"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LC_ALL": "C",
                               CIPHER_PASS_ENV: CIPHER_PASS, **self.extra_env}, overrides)

    def start(self) -> None:
        parameters = {"listen_addresses": "127.0.0.1", "port": str(self.settings.port),
                      "unix_socket_directories": self.settings.socket_dir, "fsync": "off",
                      **archive_parameters(self.settings)}
        argv = [str(self.pg / "postgres"), "-D", str(self.data)]
        for key, value in parameters.items():
            argv += ["-c", f"{key}={value}"]
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(as_postgres(argv), env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        # Ready only when it accepts writes: after a restore that means recovery ended and it promoted.
        while self.sql("SELECT pg_is_in_recovery()", check=False) != "f":
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not come up as a primary:\n{(self.root / 'server.log').read_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            subprocess.run(as_postgres([str(self.pg / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]),
                           env=self.env(), capture_output=True, timeout=TIMEOUT)
        stop_process(self.process, TIMEOUT)
        self.process = None

    def sql(self, sql: str, *, check: bool = True) -> str:
        """As the superuser over the private socket (peer auth)."""
        result = subprocess.run(
            as_postgres([str(self.pg / "psql"), "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1",
                         "-h", self.settings.socket_dir, "-p", str(self.settings.port), "-d", "postgres"]),
            input=sql, env=self.env(), capture_output=True, text=True, timeout=TIMEOUT)
        if check:
            assert result.returncode == 0, f"{sql[:200]!r} failed:\n{result.stderr}"
        return result.stdout.strip()

    def pgbackrest(self, argv: list[str], **env: str | None) -> subprocess.CompletedProcess[str]:
        """A rendered pgbackrest command line, as the data dir's owner (as in the image)."""
        # errors="replace": with a wrong passphrase its message quotes the garbage it decrypted.
        return subprocess.run(as_postgres(argv), env=self.env(**env), capture_output=True, text=True,
                              errors="replace", timeout=TIMEOUT)

    def ok(self, argv: list[str]) -> str:
        result = self.pgbackrest(argv)
        assert result.returncode == 0, f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        return result.stdout


@contextmanager
def running_server(repository: Callable[[Path], str | S3Repository], **env: str) -> Iterator[Server]:
    """A fresh cluster archiving into `repository(root)`, its stanza created; stopped and removed on exit."""
    for program, package in (("pgbackrest", "pgbackrest"), ("setpriv", "util-linux")):
        if not shutil.which(program):
            pytest.fail(f"`{program}` not found: apt-get install -y {package} (these tests run it and do not skip)")
    try:
        pg = postgres_bindir(("initdb", "postgres", "pg_ctl", "psql"))
    except Missing as missing:
        pytest.fail(str(missing))
    # Not under pytest's tmp dir (0700, root's): the postgres user must enter it; short for the socket.
    root = Path(tempfile.mkdtemp(prefix="ceres-pitr-"))
    shutil.chown(root, "postgres", "postgres")
    settings = PgBackRestSettings(
        stanza=STANZA, repository=repository(root), data_dir=f"{root}/data", port=free_port(),
        socket_dir=str(root), config_path=f"{root}/pgbackrest.conf", lock_path=f"{root}/lock")
    Path(settings.config_path).write_text(pgbackrest_conf(settings))
    folders = [settings.lock_path, *([settings.repository] if isinstance(settings.repository, str) else [])]
    for folder in folders:
        os.mkdir(folder, 0o750)
        shutil.chown(folder, "postgres", "postgres")
    instance = Server(pg, root, settings, extra_env=env)
    try:
        subprocess.run(as_postgres([str(pg / "initdb"), "-D", settings.data_dir, "-U", "postgres", "-E", "UTF8",
                                    "--no-locale", "--auth-local=peer", "--auth-host=scram-sha-256"]),
                       env=instance.env(), check=True, capture_output=True, timeout=TIMEOUT)
        instance.start()
        instance.ok(stanza_create(settings))
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server(lambda root: f"{root}/repo") as instance:
        yield instance


def _now_utc(server: Server) -> datetime:
    text = server.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _backups(server: Server) -> list[dict]:
    return json.loads(server.ok(info(server.settings)))[0]["backup"]


def test_restores_to_a_point_in_time_from_the_newest_backup_before_it(server: Server) -> None:
    settings = server.settings
    assert server.sql("SHOW archive_command") == archive_parameters(settings)["archive_command"]
    server.ok(check(settings))
    server.ok(backup(settings, "full"))
    server.sql("CREATE TABLE events (id int PRIMARY KEY, batch text NOT NULL);"
               "INSERT INTO events SELECT g, 'A0' FROM generate_series(1, 100) g;")
    server.ok(backup(settings, "diff"))
    # pgBackRest picks the newest backup that stopped before T counting whole seconds: T must fall
    # in a later second than the diff's stop for the diff to be chosen (an earlier one would also
    # restore correctly, replaying more WAL; choosing the diff proves diff backups restore).
    time.sleep(1.1)
    server.sql("INSERT INTO events SELECT g, 'A' FROM generate_series(101, 250) g;")
    target = _now_utc(server)
    time.sleep(0.05)  # B's commit timestamp strictly after T, whatever the clock's resolution
    server.sql("INSERT INTO events SELECT g, 'B' FROM generate_series(251, 400) g; UPDATE events SET batch = 'B' WHERE id = 1;")
    server.ok(check(settings))  # B's commit archived: recovery stops on the first commit after T
    assert [b["type"] for b in _backups(server)] == ["full", "diff"]

    server.stop()
    shutil.rmtree(server.data)
    restored = server.ok(point_in_time_restore(settings, target))
    diff_label = _backups(server)[-1]["label"]
    assert f"restore backup set {diff_label}" in restored, f"not restored from the diff before T:\n{restored}"
    # Recovery fetches WAL with the command pgBackRest wrote: Patroni's (rendered) must be the same.
    auto_conf = (server.data / "postgresql.auto.conf").read_text()
    assert f"restore_command = '{restore_command(settings)}'" in auto_conf, auto_conf
    assert CIPHER_PASS not in auto_conf
    server.start()

    assert server.sql("SELECT batch, count(*) FROM events GROUP BY batch ORDER BY batch") == "A|150\nA0|100"
    assert server.sql("SELECT batch FROM events WHERE id = 1") == "A0"
    # Promoted onto a new timeline: it takes writes, and its WAL archives apart from the old history.
    assert server.sql("SELECT timeline_id FROM pg_control_checkpoint()") == "2"
    server.sql("INSERT INTO events VALUES (1000, 'after')")
    server.ok(check(settings))


def test_an_s3_bucket_archives_backs_up_and_restores_to_a_moment() -> None:
    """Prod's repository: a bucket (moto's S3 server over TLS here), the keys only in the
    environment, the same rendered commands."""
    with s3_store(tls=True) as store:
        bucket = S3Repository(endpoint=store.host, bucket=store.bucket, region=REGION, path="/pgbackrest/ceres-test",
                              uri_style="path", port=store.port, verify_tls=False)
        keys = {S3_KEY_ENV: ACCESS_KEY, S3_KEY_SECRET_ENV: SECRET_KEY}
        with running_server(lambda root: bucket, **keys) as server:
            conf = Path(server.settings.config_path).read_text()
            assert "repo1-type=s3" in conf and ACCESS_KEY not in conf and SECRET_KEY not in conf
            server.ok(backup(server.settings, "full"))
            time.sleep(1.1)  # T in a later second than the backup's stop (pgBackRest compares whole seconds)
            server.sql("CREATE TABLE events (id int PRIMARY KEY); INSERT INTO events SELECT generate_series(1, 50);")
            target = _now_utc(server)
            time.sleep(0.05)
            server.sql("INSERT INTO events SELECT generate_series(51, 80);")
            server.ok(check(server.settings))
            assert [b["type"] for b in _backups(server)] == ["full"]

            server.stop()
            shutil.rmtree(server.data)
            server.ok(point_in_time_restore(server.settings, target))
            server.start()
            assert server.sql("SELECT count(*), max(id) FROM events") == "50|50"
            without_keys = server.pgbackrest(info(server.settings), **{S3_KEY_ENV: None})
            assert without_keys.returncode != 0 and "repo1-s3-key" in without_keys.stderr, without_keys.stderr


def test_repository_is_encrypted_and_refused_without_the_passphrase(server: Server) -> None:
    settings = server.settings
    assert CIPHER_PASS not in pgbackrest_conf(settings)
    info_file = Path(settings.repository) / "backup" / STANZA / "backup.info"
    assert info_file.read_bytes().startswith(b"Salted__"), "backup.info is not encrypted"

    unset = server.pgbackrest(check(settings), **{CIPHER_PASS_ENV: None})
    assert unset.returncode != 0
    assert "repo1-cipher-pass" in unset.stderr, unset.stderr
    # A wrong passphrase is refused, but pgBackRest 2.45 names the cause only when the decrypted
    # padding is invalid ("is or was the repo encrypted?"); otherwise it reports the garbage as a
    # FormatError. Stable: the info file it could not read.
    wrong = server.pgbackrest(check(settings), **{CIPHER_PASS_ENV: "not the passphrase"})
    assert wrong.returncode != 0
    assert f"unable to load info file '{settings.repository}/archive/{STANZA}/archive.info'" in wrong.stderr, wrong.stderr


def _fails(server: Server, settings: PgBackRestSettings, *expected: str) -> None:
    """`check` with `settings` (its own config file) exits non-zero with every `expected` in its message."""
    Path(settings.config_path).write_text(pgbackrest_conf(settings))
    try:
        result = server.pgbackrest(check(settings))
    finally:
        os.remove(settings.config_path)
    message = result.stdout + result.stderr
    assert result.returncode != 0, message
    for text in expected:
        assert text in message, message


def test_fails_clearly_for_a_stanza_the_config_does_not_name(server: Server) -> None:
    result = server.pgbackrest(check(replace(server.settings, stanza="no-such-stanza")))
    assert result.returncode != 0
    assert "does this stanza exist?" in result.stderr, result.stderr


def test_fails_clearly_for_a_stanza_never_created_in_the_repository(server: Server) -> None:
    _fails(server, replace(server.settings, stanza="never-created", config_path=f"{server.root}/never.conf"),
           f"{server.settings.repository}/archive/never-created/archive.info", "stanza-create")


def test_fails_clearly_for_a_missing_repository(server: Server) -> None:
    missing = f"{server.root}/no-such-repo"
    _fails(server, replace(server.settings, repository=missing, config_path=f"{server.root}/missing.conf"), missing)
    assert not Path(missing).exists(), "check created the repository it should have refused"


def test_refuses_a_target_without_a_timezone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        point_in_time_restore(PgBackRestSettings(stanza="main"), datetime(2025, 1, 1, 12, 0))


def test_refuses_names_that_would_break_the_shell_commands() -> None:
    with pytest.raises(ValueError, match="stanza"):
        PgBackRestSettings(stanza="main; rm -rf /")
    with pytest.raises(ValueError, match="repository"):
        PgBackRestSettings(stanza="main", repository="/var/lib/pg backrest")
