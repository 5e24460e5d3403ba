"""The rendered PostgreSQL config and provisioning scripts, fed to a real PostgreSQL server.

The server is Debian's (`apt-get install -y postgresql`); production runs the official
`postgres:17` image with the same files, so the properties proven here are the ones that
matter there: the server starts with our postgresql.conf and pg_hba.conf, each consumer reaches
only its own database with its own password, provisioning is idempotent and rotates passwords,
retiring keeps the data but stops logins, and the password never travels in the script text.

One throwaway cluster per module (initdb into a temp dir), bound to 127.0.0.1 on a free port,
stopped in teardown even when a test fails. No systemd, no Debian default cluster involved.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from components.config.postgres import (
    MONITOR_ROLE,
    PostgresSettings,
    monitoring_sql,
    pg_hba_conf,
    postgresql_conf,
    provision_sql,
    retire_sql,
)
from tests.components.real_processes import as_postgres
from tests.support import free_port

TIMEOUT = 30  # seconds, for every subprocess call and for startup
CONSUMERS = ("gitea", "keycloak")
SETTINGS = PostgresSettings(memory_mb=256, consumers=CONSUMERS, monitoring=True)
PRODUCTION_HBA_LINE = "hba_file = '/etc/postgresql/pg_hba.conf'"
SERVER_BINARIES = ("initdb", "postgres", "pg_ctl", "pg_isready", "psql")
INSTALL_HINT = "run `apt-get install -y postgresql` (Debian's PostgreSQL server and client)"


# --- locating the binaries -------------------------------------------------------------------


def _major(bindir: str) -> int:
    match = re.search(r"/postgresql/(\d+)/bin$", bindir)
    return int(match.group(1)) if match else -1


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin that has every binary we need."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True)
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, b), os.X_OK) for b in SERVER_BINARIES):
            if _major(bindir) < 15:
                pytest.fail(
                    f"PostgreSQL in {bindir} is older than 15; psql needs `\\getenv` (15+). {INSTALL_HINT}"
                )
            return Path(bindir)
    pytest.fail(
        "PostgreSQL server binaries (initdb, postgres, pg_ctl, pg_isready, psql) not found under "
        f"/usr/lib/postgresql/*/bin: {INSTALL_HINT}. These tests need the real server and do not skip."
    )


# --- the cluster -----------------------------------------------------------------------------


@dataclass
class Cluster:
    bindir: Path
    root: Path  # temp dir owned by postgres: data dir, conf copies, socket, log
    data: Path
    port: int
    conf_path: Path
    hba_path: Path
    log_path: Path
    base_env: dict[str, str]

    def bin(self, name: str) -> str:
        return str(self.bindir / name)

    def admin(self, script: str, *, password: str | None = None, dbname: str = "postgres",
              check: bool = True) -> subprocess.CompletedProcess[str]:
        """`psql -q -d <db>` with the script on stdin, as the postgres OS user over the local socket.

        This is how production runs provision_sql / retire_sql: CERES_ROLE_PASSWORD in the
        environment only, never on the command line.
        """
        env = dict(self.base_env, PGHOST=str(self.root), PGPORT=str(self.port))
        if password is not None:
            env["CERES_ROLE_PASSWORD"] = password
        # Exactly production's `psql -q -d postgres` (plus -X: ignore any ~/.psqlrc); ON_ERROR_STOP
        # is deliberately not added here, the script must set it itself.
        argv = as_postgres([self.bin("psql"), "-X", "-q", "-d", dbname])
        result = subprocess.run(argv, input=script, env=env, capture_output=True, text=True,
                                timeout=TIMEOUT)
        if check:
            assert result.returncode == 0, f"psql as postgres failed:\n{result.stderr}"
        return result

    def query(self, sql: str, *, dbname: str = "postgres") -> str:
        """One value, as the superuser over the socket (unaligned, tuples only)."""
        env = dict(self.base_env, PGHOST=str(self.root), PGPORT=str(self.port))
        argv = as_postgres([self.bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", dbname, "-c", sql])
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, f"query {sql!r} failed:\n{result.stderr}"
        return result.stdout.strip()

    def consumer(self, user: str, password: str, sql: str = "SELECT current_user", *,
                 dbname: str | None = None) -> subprocess.CompletedProcess[str]:
        """A consumer's connection over TCP to 127.0.0.1, as another container would make it.

        The password goes through PGPASSWORD (environment), not the conninfo on the command line.
        """
        env = dict(self.base_env, PGPASSWORD=password)
        conninfo = f"host=127.0.0.1 port={self.port} dbname={dbname or user} user={user} connect_timeout=10"
        argv = [self.bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)

    def consumer_ok(self, user: str, password: str, sql: str = "SELECT current_user", *,
                    dbname: str | None = None) -> str:
        result = self.consumer(user, password, sql, dbname=dbname)
        assert result.returncode == 0, f"{user} could not run {sql!r}:\n{result.stderr}"
        return result.stdout.strip()

    def consumer_refused(self, user: str, password: str, *, dbname: str | None = None) -> str:
        result = self.consumer(user, password, dbname=dbname)
        assert result.returncode != 0, f"{user} connected to {dbname or user} but must not:\n{result.stdout}"
        return result.stderr


def _wait_ready(cluster: Cluster, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        ready = subprocess.run(
            [cluster.bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(cluster.port), "-t", "2"],
            env=cluster.base_env, timeout=TIMEOUT,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    log = cluster.log_path.read_text(errors="replace") if cluster.log_path.exists() else "(no log)"
    pytest.fail(f"postgres did not answer pg_isready within {TIMEOUT}s (exit={server.poll()}):\n{log}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bindir = find_bindir()
    # Not pytest's tmp_path: that lives under a 0700 root-owned dir the postgres user cannot enter.
    # Short path too, since the Unix socket path must fit in ~107 bytes.
    root = Path(tempfile.mkdtemp(prefix="ceres-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    # A clean environment: nothing from the caller's PG* variables, HOME the postgres user can read.
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "LC_ALL": "C",
                "PGPASSFILE": str(root / "no-such-pgpass"), "PGCONNECT_TIMEOUT": "10"}
    cluster = Cluster(bindir=bindir, root=root, data=data, port=free_port(),
                      conf_path=root / "postgresql.conf", hba_path=root / "pg_hba.conf",
                      log_path=root / "server.log", base_env=base_env)
    server: subprocess.Popen[bytes] | None = None
    log_file = None
    try:
        initdb = subprocess.run(
            as_postgres([cluster.bin("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                         "--no-locale", "--auth=reject"]),
            env=base_env, capture_output=True, text=True, timeout=TIMEOUT * 2,
        )
        assert initdb.returncode == 0, f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}"

        conf = postgresql_conf(SETTINGS)
        # Production uploads pg_hba.conf to /etc/postgresql/ inside the container. On this host
        # that path belongs to Debian's packaging (and we must not touch the system), so the
        # one line naming it is pointed at the temp copy; everything else is used verbatim.
        assert conf.count(PRODUCTION_HBA_LINE) == 1, "postgresql_conf no longer sets hba_file as expected"
        cluster.conf_path.write_text(conf.replace(PRODUCTION_HBA_LINE, f"hba_file = '{cluster.hba_path}'"))
        cluster.hba_path.write_text(pg_hba_conf(SETTINGS))
        for path in (cluster.conf_path, cluster.hba_path):
            shutil.chown(path, "postgres", "postgres")

        log_file = open(cluster.log_path, "wb")
        # Started like the postgres:17 image starts it: `postgres -c config_file=...`, PGDATA from
        # the environment. Command-line -c options override the config file, so these -c flags
        # only confine the test server (loopback, a free port, a private socket dir) while every
        # other setting comes from our rendered postgresql.conf.
        server = subprocess.Popen(
            as_postgres([
                cluster.bin("postgres"),
                "-c", f"config_file={cluster.conf_path}",
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={cluster.port}",
                "-c", f"unix_socket_directories={root}",
            ]),
            env=dict(base_env, PGDATA=str(data)), stdout=log_file, stderr=subprocess.STDOUT,
        )
        _wait_ready(cluster, server)
        yield cluster
    finally:
        if server is not None:
            if server.poll() is None:
                subprocess.run(as_postgres([cluster.bin("pg_ctl"), "stop", "-D", str(data), "-m", "immediate",
                                            "-t", str(TIMEOUT)]),
                               env=base_env, capture_output=True, timeout=TIMEOUT + 5)
            try:
                server.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=TIMEOUT)
        if log_file is not None:
            log_file.close()
        shutil.rmtree(root, ignore_errors=True)


def new_password() -> str:
    """Random, and full of characters that break naive quoting: quote, backslash, colon, dollar, space."""
    return f"p'w\\:{secrets.token_hex(8)} $x \"y"


def provision(cluster: Cluster, consumer: str, password: str) -> None:
    script = provision_sql(consumer)
    assert password not in script
    cluster.admin(script, password=password)


# --- 1. the server starts with our config -------------------------------------------------------


def test_server_starts_with_rendered_config_and_hba(cluster: Cluster) -> None:
    # Our files are the ones in effect, not initdb's defaults in the data dir.
    assert cluster.query("SHOW config_file") == str(cluster.conf_path)
    assert cluster.query("SHOW hba_file") == str(cluster.hba_path)
    assert cluster.query("SHOW max_connections") == "100"  # 20 reserved + 40 x 2 consumers
    assert cluster.query("SHOW shared_buffers") == "64MB"
    assert cluster.query("SHOW password_encryption") == "scram-sha-256"
    assert cluster.query("SHOW log_connections") == "on"
    # Every hba line parsed (an unparsable line would carry an error here).
    errors = cluster.query("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
    assert errors == "0", cluster.query("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")


def test_superuser_cannot_connect_over_tcp(cluster: Cluster) -> None:
    # Only `local ... postgres peer` lets the superuser in; TCP falls through to reject.
    stderr = cluster.consumer_refused("postgres", "anything", dbname="postgres")
    assert "pg_hba.conf rejects connection" in stderr


# --- 2. each consumer reaches only its own database ----------------------------------------------


def test_consumers_reach_only_their_own_database(cluster: Cluster) -> None:
    passwords = {name: new_password() for name in CONSUMERS}
    for name, password in passwords.items():
        provision(cluster, name, password)

    for name, password in passwords.items():
        assert cluster.consumer_ok(name, password) == name
        cluster.consumer_ok(name, password, f"CREATE TABLE isolation_{secrets.token_hex(4)} (id int)")
        assert cluster.consumer_ok(name, password, "SHOW is_superuser") == "off"
        attrs = cluster.query(
            f"SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = '{name}'"
        )
        assert attrs == "f|f|f|t"
        assert cluster.query(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'") == name

        for other in [*[c for c in CONSUMERS if c != name], "postgres", "template1"]:
            stderr = cluster.consumer_refused(name, password, dbname=other)
            assert "pg_hba.conf rejects connection" in stderr, stderr

        stderr = cluster.consumer_refused(name, password + "-wrong")
        assert "password authentication failed" in stderr, stderr


# --- 3. idempotence and rotation ---------------------------------------------------------------

_ROLE_STATE = (
    "SELECT string_agg(format('%s %s %s %s %s %s', rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin,"
    " rolconnlimit), ',' ORDER BY rolname) FROM pg_roles"
)
_DB_STATE = (
    "SELECT string_agg(format('%s %s %s', datname, pg_get_userbyid(datdba), datacl), ',' ORDER BY datname)"
    " FROM pg_database"
)


def test_reprovisioning_is_idempotent_and_rotates_the_password(cluster: Cluster) -> None:
    name, first = "keycloak", new_password()
    provision(cluster, name, first)
    cluster.consumer_ok(name, first, "CREATE TABLE IF NOT EXISTS kept (v text); INSERT INTO kept VALUES ('x')")
    rows = cluster.consumer_ok(name, first, "SELECT count(*) FROM kept")
    roles, dbs = cluster.query(_ROLE_STATE), cluster.query(_DB_STATE)

    # Same password again: succeeds, no role/database/privilege changes, data and login intact.
    # (ALTER ROLE ... PASSWORD re-hashes with a fresh SCRAM salt, so only the stored verifier differs.)
    provision(cluster, name, first)
    assert cluster.query(_ROLE_STATE) == roles
    assert cluster.query(_DB_STATE) == dbs
    assert cluster.consumer_ok(name, first, "SELECT count(*) FROM kept") == rows

    # New password: the new one works, the old one is refused, the data survives.
    second = new_password()
    provision(cluster, name, second)
    assert cluster.consumer_ok(name, second, "SELECT count(*) FROM kept") == rows
    assert "password authentication failed" in cluster.consumer_refused(name, first)
    assert cluster.query(_ROLE_STATE) == roles
    assert cluster.query(_DB_STATE) == dbs


def test_provisioning_without_the_password_variable_fails_closed(cluster: Cluster) -> None:
    # Unset CERES_ROLE_PASSWORD leaves :'role_password' unexpanded -> syntax error -> ON_ERROR_STOP.
    name, password = "gitea", new_password()
    provision(cluster, name, password)
    result = cluster.admin(provision_sql(name), password=None, check=False)
    assert result.returncode != 0
    cluster.consumer_ok(name, password)  # the existing password was not touched


# --- 4. retiring keeps the data ------------------------------------------------------------------


def test_retire_keeps_data_but_stops_logins(cluster: Cluster) -> None:
    name, password = "gitea", new_password()
    provision(cluster, name, password)
    cluster.consumer_ok(name, password, "CREATE TABLE IF NOT EXISTS archive (v text); INSERT INTO archive VALUES ('kept')")
    try:
        cluster.admin(retire_sql(name))
        stderr = cluster.consumer_refused(name, password)
        assert "not permitted to log in" in stderr, stderr
        assert cluster.query(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1"
        assert "kept" in cluster.query("SELECT string_agg(v, ',') FROM archive", dbname=name).split(",")
    finally:
        provision(cluster, name, password)  # back to the provisioned state for any later test
    cluster.consumer_ok(name, password)


# --- 5. the password stays out of the script and the server log --------------------------------


def test_password_is_not_in_script_text_or_server_log(cluster: Cluster) -> None:
    password = new_password()
    for name in CONSUMERS:
        script = provision_sql(name)
        assert password not in script
        assert "CERES_ROLE_PASSWORD" in script  # it is read from the environment instead
        provision(cluster, name, password)
        cluster.consumer_ok(name, password)
    assert password not in cluster.log_path.read_text(errors="replace")


# --- 6. the monitoring role reads statistics and nothing else -----------------------------------


def provision_monitoring(cluster: Cluster, password: str) -> None:
    script = monitoring_sql()
    assert password not in script
    cluster.admin(script, password=password)


def test_monitoring_role_reads_statistics_but_cannot_write_or_reach_consumer_data(cluster: Cluster) -> None:
    for name in CONSUMERS:
        provision(cluster, name, new_password())
    password = new_password()
    provision_monitoring(cluster, password)
    monitor = MONITOR_ROLE

    # What postgres_exporter reads: per-database statistics, settings, every session's activity.
    databases = cluster.consumer_ok(monitor, password, "SELECT string_agg(datname, ',') FROM pg_stat_database", dbname="postgres")
    assert set(CONSUMERS) <= set(databases.split(","))
    assert cluster.consumer_ok(monitor, password, "SELECT pg_has_role('pg_monitor', 'MEMBER')", dbname="postgres") == "t"
    # data_directory is hidden from ordinary roles; pg_read_all_settings (in pg_monitor) shows it.
    assert cluster.consumer_ok(monitor, password, "SHOW data_directory", dbname="postgres").startswith("/")

    # It cannot create anything, and its sessions are read-only.
    for sql in ("CREATE TABLE monitor_probe (id int)", "CREATE SCHEMA monitor_probe", "CREATE DATABASE monitor_probe"):
        result = cluster.consumer(monitor, password, sql, dbname="postgres")
        assert result.returncode != 0, f"{sql} succeeded for {monitor}"
    assert cluster.consumer_ok(monitor, password, "SHOW default_transaction_read_only", dbname="postgres") == "on"
    attrs = cluster.query(f"SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolconnlimit FROM pg_roles WHERE rolname = '{monitor}'")
    assert attrs == "f|f|f|f|5"

    # It reaches only `postgres`: every consumer database (and template1) is refused by pg_hba.
    for other in [*CONSUMERS, "template1"]:
        stderr = cluster.consumer_refused(monitor, password, dbname=other)
        assert "pg_hba.conf rejects connection" in stderr, stderr
    assert "password authentication failed" in cluster.consumer_refused(monitor, password + "-wrong", dbname="postgres")


def test_monitoring_provisioning_is_idempotent_and_keeps_the_password_out_of_the_log(cluster: Cluster) -> None:
    password = new_password()
    provision_monitoring(cluster, password)
    roles = cluster.query(_ROLE_STATE)
    provision_monitoring(cluster, password)
    assert cluster.query(_ROLE_STATE) == roles
    assert cluster.query(f"SELECT count(*) FROM pg_auth_members WHERE member = '{MONITOR_ROLE}'::regrole") == "1"
    cluster.consumer_ok(MONITOR_ROLE, password, dbname="postgres")
    assert cluster.admin(monitoring_sql(), password=None, check=False).returncode != 0
    cluster.consumer_ok(MONITOR_ROLE, password, dbname="postgres")
    assert password not in cluster.log_path.read_text(errors="replace")


def test_retiring_the_monitoring_role_stops_its_logins(cluster: Cluster) -> None:
    password = new_password()
    provision_monitoring(cluster, password)
    try:
        cluster.admin(retire_sql(MONITOR_ROLE))
        assert "not permitted to log in" in cluster.consumer_refused(MONITOR_ROLE, password, dbname="postgres")
    finally:
        provision_monitoring(cluster, password)
    cluster.consumer_ok(MONITOR_ROLE, password, dbname="postgres")


def test_monitoring_hba_line_only_when_asked() -> None:
    line = f"host    postgres  {MONITOR_ROLE}  all  scram-sha-256"
    assert line in pg_hba_conf(SETTINGS)
    assert MONITOR_ROLE not in pg_hba_conf(PostgresSettings(memory_mb=256, consumers=CONSUMERS))
    with pytest.raises(ValueError):
        PostgresSettings(memory_mb=256, consumers=(MONITOR_ROLE,))


# --- 7. unsafe identifiers are rejected at render time (no server) -----------------------------


@pytest.mark.parametrize("bad", ["bad name; drop", "Gitea", "1abc", "a-b", "x'; DROP ROLE postgres; --", "", "a" * 64])
def test_rendering_rejects_unsafe_identifiers(bad: str) -> None:
    with pytest.raises(ValueError):
        provision_sql(bad)
    with pytest.raises(ValueError):
        retire_sql(bad)
    with pytest.raises(ValueError):
        PostgresSettings(memory_mb=256, consumers=(bad,))
