"""The backup scripts, run for real: the same text the backup container runs, under busybox sh
(the restic image is Alpine), with Debian's restic and PostgreSQL.

A throwaway source cluster holds two application databases owned by two login roles (tables in two
schemas, a sequence, bytea, a large object); a directory tree stands for the volumes (nested
files, binary content, a symlink, odd modes and owners). backup.sh takes a run; both are wiped
(databases and roles dropped, tree removed); ONE `restore-full.sh` brings everything back, checked
table by table (row count and md5 of the ordered rows), role by role (password verifier included)
and file by file (sha256, mode, owner, link target). Then every refusal: missing or damaged
repository, wrong password, unreachable database, unknown or incomplete run: a clear message and
nothing changed. The metric moves only on success; the drill passes on a fresh run and fails once
the source changed.

Needs: `apt-get install -y restic postgresql busybox`. Servers: 127.0.0.1 on free ports and
sockets in temp dirs, stopped in teardown.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest

from components.config.backup import (
    METRICS_FILE,
    METRICS_PATH,
    SUCCESS_METRIC,
    BackupSettings,
    Database,
    PostgresServer,
    Retention,
    backup_script,
    dockerfile,
    metrics_server_command,
    restore_drill_script,
    restore_full_script,
)
from components.config.alert_rules import BACKUP_SUCCESS_METRIC
from stacks.tiers import BASE
from tests.components.config.stubs import stop_process
from tests.components.real_processes import Missing, as_postgres, postgres_bindir
from tests.components.s3_store import ACCESS_KEY, SECRET_KEY, s3_store
from tests.support import free_port

TIMEOUT = 120  # seconds, for any one script or server step
SUPERUSER_PASSWORD = "su-p'w:d $x"  # quotes, colon and dollar: pgpass must escape the colon
APP_ROLES = {"gitea": "gitea-pw-1", "wiki": "wiki-pw-2"}
VOLUMES = ("gitea-data", "wiki-data")
# What the scripts call: busybox applets (as in Alpine) first on PATH, then PostgreSQL and restic.
APPLETS = ("sh", "cat", "chmod", "chown", "cmp", "cp", "date", "diff", "find", "grep", "head", "mkdir",
           "mktemp", "mv", "rm", "sed", "sort", "stat", "tail", "tr", "wc", "basename", "sleep")
INSTALL = "apt-get install -y restic postgresql busybox"


# --- tools ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    for program, package in (("restic", "restic"), ("busybox", "busybox"), ("setpriv", "util-linux")):
        if not shutil.which(program):
            pytest.fail(f"`{program}` not found: apt-get install -y {package} (these tests do not skip)")
    busybox = shutil.which("busybox")
    bindir = tmp_path_factory.mktemp("busybox-bin")
    for applet in APPLETS:
        (bindir / applet).symlink_to(busybox)
    try:
        pg = postgres_bindir(("initdb", "postgres", "pg_dump", "pg_restore"))
    except Missing as missing:
        pytest.fail(str(missing))
    return {"PATH": f"{bindir}:{pg}:/usr/bin:/bin", "pg": str(pg), "busybox": busybox}


# --- PostgreSQL clusters -------------------------------------------------------------------------


@dataclass
class Cluster:
    pg: Path
    root: Path
    port: int

    def sql(self, sql: str, db: str = "postgres", *, check: bool = True) -> str:
        """As the superuser over the private socket (peer), one statement or script."""
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LC_ALL": "C"}
        result = subprocess.run(
            as_postgres([str(self.pg / "psql"), "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1",
                         "-h", str(self.root), "-p", str(self.port), "-d", db]),
            input=sql, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        if check:
            assert result.returncode == 0, f"{sql[:200]!r} failed:\n{result.stderr}"
        return result.stdout.strip()

    def login(self, role: str, password: str, db: str) -> subprocess.CompletedProcess[str]:
        """An application's TCP login with its own password."""
        env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": password, "PGPASSFILE": "/nonexistent", "LC_ALL": "C"}
        return subprocess.run([str(self.pg / "psql"), "-X", "-At", "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", role, "-d", db, "-c", "SELECT current_user"],
                              env=env, capture_output=True, text=True, timeout=TIMEOUT)


@contextmanager
def running_cluster(pg: Path) -> Iterator[Cluster]:
    # Not under pytest's tmp dir (0700, root's): the postgres user must enter it; short for the socket.
    root = Path(tempfile.mkdtemp(prefix="ceres-bk-pg-"))
    shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(pg, root, free_port())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "LC_ALL": "C"}
    server = None
    log = open(root / "server.log", "wb")
    try:
        subprocess.run(as_postgres([str(pg / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-E", "UTF8",
                                    "--no-locale", "--auth-local=peer", "--auth-host=scram-sha-256"]),
                       env=env, check=True, capture_output=True, timeout=TIMEOUT)
        server = subprocess.Popen(
            as_postgres([str(pg / "postgres"), "-D", str(root / "data"), "-c", "listen_addresses=127.0.0.1",
                         "-c", f"port={cluster.port}", "-c", f"unix_socket_directories={root}", "-c", "fsync=off"]),
            env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        while subprocess.run([str(pg / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(cluster.port)],
                             timeout=TIMEOUT).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not start:\n{(root / 'server.log').read_text()}")
            time.sleep(0.2)
        cluster.sql(f"ALTER ROLE postgres PASSWORD '{SUPERUSER_PASSWORD.replace(chr(39), chr(39) * 2)}'")
        yield cluster
    finally:
        if server is not None and server.poll() is None:
            subprocess.run(as_postgres([str(pg / "pg_ctl"), "stop", "-D", str(root / "data"), "-m", "fast"]),
                           env=env, capture_output=True, timeout=TIMEOUT)
        stop_process(server, TIMEOUT)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def source(tools: dict[str, str]) -> Iterator[Cluster]:
    with running_cluster(Path(tools["pg"])) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def throwaway(tools: dict[str, str]) -> Iterator[Cluster]:
    with running_cluster(Path(tools["pg"])) as cluster:
        yield cluster


# --- the data ------------------------------------------------------------------------------------


def populate(cluster: Cluster) -> None:
    for role, password in APP_ROLES.items():
        cluster.sql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'; CREATE DATABASE {role} OWNER {role};")
    cluster.sql("""
        SET ROLE gitea;
        CREATE TABLE repos (id serial PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());
        INSERT INTO repos (name) SELECT 'repo-' || g FROM generate_series(1, 500) g;
        CREATE TABLE blobs (id int PRIMARY KEY, data bytea);
        INSERT INTO blobs SELECT g, decode(md5(g::text) || md5((g * 7)::text), 'hex') FROM generate_series(1, 200) g;
        CREATE SCHEMA issues;
        CREATE TABLE issues."odd name" (id bigint, body text, tags text[]);
        INSERT INTO issues."odd name" SELECT g, repeat('é', g % 9) || E'\\n\\t' || g, ARRAY['a', g::text]
            FROM generate_series(1, 300) g;
        CREATE SEQUENCE ticket_seq;
        SELECT setval('ticket_seq', 42);
        SELECT lo_from_bytea(424242, decode(repeat('00ff10', 5000), 'hex'));
    """, "gitea")
    cluster.sql("""
        SET ROLE wiki;
        CREATE TABLE pages (path text PRIMARY KEY, doc jsonb, updated date);
        INSERT INTO pages SELECT '/p/' || g, jsonb_build_object('n', g, 'title', 'Page ' || g), DATE '2024-01-01' + g
            FROM generate_series(1, 400) g;
        GRANT SELECT ON pages TO gitea;
    """, "wiki")


def databases_state(cluster: Cluster) -> dict[str, object]:
    """Everything restore must bring back, read independently of the scripts."""
    state: dict[str, object] = {
        "roles": cluster.sql("SELECT string_agg(format('%s %s %s %s', rolname, rolcanlogin, rolsuper, rolpassword), "
                             "'|' ORDER BY rolname) FROM pg_authid WHERE rolname !~ '^pg_'"),
        "databases": cluster.sql("SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) "
                                 "FROM pg_database"),
    }
    for db in APP_ROLES:
        if cluster.sql(f"SELECT count(*) FROM pg_database WHERE datname = '{db}'") == "0":
            continue
        tables = cluster.sql("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                             "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", db).splitlines()
        for table in tables:
            literal = table.replace("'", "''")
            state[f"{db}/{table}"] = cluster.sql(
                f"SELECT count(*) || ' ' || md5(string_agg(t::text, '' ORDER BY t::text)) || ' ' || "
                f"(SELECT tableowner FROM pg_tables WHERE format('%I.%I', schemaname, tablename) = '{literal}') "
                f"FROM {table} t", db)
        state[f"{db}/sequences"] = cluster.sql("SELECT string_agg(sequencename || '=' || coalesce(last_value, 0), ',' "
                                               "ORDER BY 1) FROM pg_sequences", db)
        state[f"{db}/large-objects"] = cluster.sql(
            "SELECT string_agg(oid || ':' || pg_get_userbyid(lomowner) || ':' || md5(lo_get(oid)), ',' ORDER BY oid) "
            "FROM pg_largeobject_metadata", db)
        state[f"{db}/grants"] = cluster.sql("SELECT string_agg(relname || '=' || relacl::text, ',' ORDER BY relname) "
                                            "FROM pg_class WHERE relacl IS NOT NULL AND relnamespace >= 16384", db)
    return state


def make_volumes(tree: Path) -> None:
    gitea = tree / "volumes" / "gitea-data"
    (gitea / "repos" / "org" / "app.git" / "objects" / "ab").mkdir(parents=True)
    (gitea / "repos" / "org" / "app.git" / "objects" / "ab" / "cdef").write_bytes(os.urandom(70_000))
    (gitea / "repos" / "org" / "app.git" / "HEAD").write_text("ref: refs/heads/main\n")
    (gitea / "conf").mkdir()
    (gitea / "conf" / "app.ini").write_text("[server]\nROOT_URL = https://git.example\n")
    (gitea / "conf" / "app.ini").chmod(0o600)
    (gitea / "current").symlink_to("repos/org/app.git")
    (gitea / "empty-dir").mkdir(mode=0o750)
    os.chown(gitea / "repos", 1000, 1000)
    wiki = tree / "volumes" / "wiki-data"
    (wiki / "a b" / "deep" / "er").mkdir(parents=True)
    (wiki / "a b" / "deep" / "er" / "page.md").write_text("# Hello\n" * 100)
    (wiki / "binary.bin").write_bytes(bytes(range(256)) * 40)
    (wiki / "binary.bin").chmod(0o640)
    os.chown(wiki / "binary.bin", 1001, 1002)
    wiki.chmod(0o770)


def files_state(tree: Path) -> dict[str, tuple]:
    state: dict[str, tuple] = {}
    volumes = tree / "volumes"
    # The volumes/ folder only holds the mount points; each volume is compared from its own root down.
    for path in sorted(volumes.rglob("*")) if volumes.exists() else []:
        info = path.lstat()
        if path.is_symlink():
            content = "link:" + os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        state[str(path.relative_to(tree))] = (content, oct(info.st_mode), info.st_uid, info.st_gid)
    return state


# --- the workspace and the scripts ---------------------------------------------------------------


@dataclass
class Workspace:
    tree: Path  # CERES_BACKUP_ROOT: volumes/ under it, the spool and staging too
    repository: Path
    password_file: Path
    metrics: Path
    scripts: Path
    env: dict[str, str]
    settings: BackupSettings

    def render(self, settings: BackupSettings, suffix: str = "") -> None:
        for name, text in (("backup", backup_script(settings)), ("restore-full", restore_full_script(settings)),
                           ("restore-drill", restore_drill_script(settings))):
            (self.scripts / f"{name}{suffix}.sh").write_text(text)

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["busybox", "sh", str(self.scripts / script), *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=TIMEOUT, cwd=self.tree)


def settings_for(cluster: Cluster, repository: Path) -> BackupSettings:
    server = PostgresServer("127.0.0.1", cluster.port, "postgres")
    return BackupSettings(
        repository=str(repository),
        retention=Retention(keep_daily=7, keep_weekly=4, keep_monthly=6),
        databases=tuple(Database(name, server) for name in APP_ROLES),
        volumes=VOLUMES,
    )


@pytest.fixture(scope="module")
def workspace(tools: dict[str, str], source: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    base = tmp_path_factory.mktemp("backup")
    tree, scripts = base / "tree", base / "scripts"
    tree.mkdir()
    scripts.mkdir()
    password_file = base / "restic-password"
    password_file.write_text("restic-secret-1\n")
    pgpass = base / "pgpass"
    pgpass.write_text(f"*:*:*:postgres:{SUPERUSER_PASSWORD.replace(':', chr(92) + ':')}\n")
    pgpass.chmod(0o600)
    repository = base / "repo"
    # The repository string the scripts are rendered with points nowhere: RESTIC_REPOSITORY wins.
    settings = settings_for(source, Path("/nonexistent/rendered-default"))
    env = {"PATH": tools["PATH"], "HOME": str(base), "LC_ALL": "C", "PGPASSFILE": str(pgpass),
           "RESTIC_REPOSITORY": str(repository), "RESTIC_PASSWORD_FILE": str(password_file),
           "RESTIC_CACHE_DIR": str(base / "restic-cache"), "CERES_BACKUP_ROOT": str(tree),
           "CERES_BACKUP_METRICS_DIR": str(base / "metrics")}
    ws = Workspace(tree, repository, password_file, base / "metrics", scripts, env, settings)
    ws.render(settings)
    return ws


def snapshot_count(ws: Workspace) -> int:
    result = subprocess.run(["restic", "snapshots", "--json"], env=ws.env, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result.stdout.count('"short_id"')


def assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode != 0, f"expected a refusal, got success:\n{result.stdout}\n{result.stderr}"
    assert "REFUSED" in result.stderr and "nothing was changed" in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, f"{phrase!r} not in:\n{result.stderr}"


# --- 1. back up, wipe, restore with one command --------------------------------------------------


@pytest.fixture(scope="module")
def first_run(workspace: Workspace, source: Cluster) -> dict[str, object]:
    populate(source)
    make_volumes(workspace.tree)
    result = workspace.run("backup.sh")
    assert result.returncode == 0, f"backup.sh failed:\n{result.stderr}"
    run_id = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d{8}T\d{6}Z", run_id), result.stdout
    return {"run": run_id, "databases": databases_state(source), "files": files_state(workspace.tree)}


def test_backup_records_the_success_metric(workspace: Workspace, first_run: dict[str, object]) -> None:
    assert SUCCESS_METRIC == BACKUP_SUCCESS_METRIC
    text = (workspace.metrics / METRICS_FILE).read_text()
    assert f"# TYPE {SUCCESS_METRIC} gauge" in text
    value = int(re.search(rf"^{SUCCESS_METRIC} (\d+)$", text, re.M).group(1))
    assert abs(value - time.time()) < TIMEOUT
    assert not (workspace.tree / "databases").exists(), "the dump spool must not outlive the run"


def test_wipe_then_one_command_restores_everything(workspace: Workspace, source: Cluster,
                                                   first_run: dict[str, object]) -> None:
    original_db, original_files = first_run["databases"], first_run["files"]
    assert len(original_files) > 10 and "gitea/issues.\"odd name\"" in original_db

    for db in APP_ROLES:
        source.sql(f"DROP DATABASE {db}")
    for role in APP_ROLES:
        source.sql(f"DROP ROLE {role}")
    shutil.rmtree(workspace.tree / "volumes")
    assert databases_state(source) != original_db and files_state(workspace.tree) == {}

    result = workspace.run("restore-full.sh")
    assert result.returncode == 0, f"restore-full.sh failed:\n{result.stdout}\n{result.stderr}"
    assert databases_state(source) == original_db
    assert files_state(workspace.tree) == original_files
    for role, password in APP_ROLES.items():  # the roles' passwords came back too
        login = source.login(role, password, role)
        assert login.returncode == 0 and login.stdout.strip() == role, login.stderr
    # It says what it restored.
    assert f"restored run {first_run['run']}" in result.stdout
    assert "database gitea: 3 tables" in result.stdout and "database wiki: 1 tables" in result.stdout
    assert "volume gitea-data: 3 files" in result.stdout and "volume wiki-data: 2 files" in result.stdout
    assert not list((workspace.tree / "staging").iterdir()), "the staging copy must be removed"


def test_an_s3_repository_backs_up_and_restores_with_keys_from_the_environment(
        workspace: Workspace, source: Cluster, first_run: dict[str, object]) -> None:
    """Prod's repository: a bucket (moto's S3 server here), the keys in restic's AWS_* environment
    as the backup container gets them; the same scripts, nothing else changed."""
    original_db, original_files = databases_state(source), files_state(workspace.tree)
    with s3_store(tls=False) as store:
        s3 = {"RESTIC_REPOSITORY": f"s3:{store.url}/{store.bucket}/restic",
              "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        result = workspace.run("backup.sh", **s3)
        assert result.returncode == 0, f"backup.sh to S3 failed:\n{result.stderr}"
        assert "creating it" in result.stderr, "the first run into an empty bucket creates the repository"
        run_id = result.stdout.strip().splitlines()[-1]

        for db in APP_ROLES:
            source.sql(f"DROP DATABASE {db}")
        shutil.rmtree(workspace.tree / "volumes")
        result = workspace.run("restore-full.sh", run_id, **s3)
        assert result.returncode == 0, f"restore-full.sh from S3 failed:\n{result.stdout}\n{result.stderr}"
        assert f"restored run {run_id}" in result.stdout
    assert databases_state(source) == original_db
    assert files_state(workspace.tree) == original_files


def test_restore_over_a_used_stack_brings_back_exactly_the_run(workspace: Workspace, source: Cluster,
                                                             first_run: dict[str, object]) -> None:
    # Written after the run: a row, a table, a file; an application still connected.
    source.sql("INSERT INTO repos (name) VALUES ('late'); CREATE TABLE later (x int);", "gitea")
    (workspace.tree / "volumes" / "wiki-data" / "late.txt").write_text("late")
    holder = subprocess.Popen(
        [str(source.pg / "psql"), "-X", "-h", "127.0.0.1", "-p", str(source.port), "-U", "wiki", "-d", "wiki",
         "-c", "SELECT pg_sleep(60)"], env={"PGPASSWORD": APP_ROLES["wiki"], "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = workspace.run("restore-full.sh", str(first_run["run"]))
    finally:
        stop_process(holder, 10)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert databases_state(source) == first_run["databases"]
    assert files_state(workspace.tree) == first_run["files"]


# --- 2. refusals change nothing ------------------------------------------------------------------


@pytest.fixture
def changed_since_the_run(workspace: Workspace, source: Cluster, first_run: dict[str, object]) -> Iterator[dict]:
    """State that differs from the run, so a restore that went ahead would show."""
    source.sql("INSERT INTO pages VALUES ('/after', '{}', '2030-01-01')", "wiki")
    (workspace.tree / "volumes" / "gitea-data" / "after.txt").write_text("written after the run")
    before = {"databases": databases_state(source), "files": files_state(workspace.tree)}
    assert before["databases"] != first_run["databases"]
    yield before
    assert databases_state(source) == before["databases"], "a refused restore changed the databases"
    assert files_state(workspace.tree) == before["files"], "a refused restore changed the files"
    source.sql("DELETE FROM pages WHERE path = '/after'", "wiki")
    (workspace.tree / "volumes" / "gitea-data" / "after.txt").unlink()


def test_missing_repository_is_refused(workspace: Workspace, changed_since_the_run: dict) -> None:
    missing = workspace.tree.parent / "no-repo-here"
    result = workspace.run("restore-full.sh", RESTIC_REPOSITORY=str(missing))
    assert_refused(result, "no restic repository at", str(missing), "RESTIC_REPOSITORY")
    assert not missing.exists(), "restore must never create a repository"


def test_wrong_password_is_refused(workspace: Workspace, changed_since_the_run: dict) -> None:
    wrong = workspace.tree.parent / "wrong-password"
    wrong.write_text("not-the-password\n")
    result = workspace.run("restore-full.sh", RESTIC_PASSWORD_FILE=str(wrong))
    assert_refused(result, "wrong password", "RESTIC_PASSWORD_FILE")


def test_corrupted_repository_is_refused(workspace: Workspace, changed_since_the_run: dict) -> None:
    damaged = workspace.tree.parent / "damaged-repo"
    shutil.copytree(workspace.repository, damaged)
    # The largest pack holds the file and dump contents: flip bytes in its middle.
    pack = max((p for p in (damaged / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))
    result = workspace.run("restore-full.sh", RESTIC_REPOSITORY=str(damaged),
                           RESTIC_CACHE_DIR=str(workspace.tree.parent / "damaged-cache"))
    assert_refused(result, "damaged", "restic check")
    shutil.rmtree(damaged)


def test_unreachable_database_is_refused(workspace: Workspace, changed_since_the_run: dict) -> None:
    port = free_port()  # nothing listens there
    nowhere = replace(workspace.settings, databases=tuple(
        Database(db.name, PostgresServer("127.0.0.1", port)) for db in workspace.settings.databases))
    workspace.render(nowhere, "-unreachable")
    result = workspace.run("restore-full-unreachable.sh")
    assert_refused(result, "unreachable", "start the database")


def test_unknown_run_is_refused(workspace: Workspace, changed_since_the_run: dict) -> None:
    assert_refused(workspace.run("restore-full.sh", "20000101T000000Z"), "no backup run '20000101T000000Z'")
    assert_refused(workspace.run("restore-full.sh", "not-a-run; rm -rf /"), "is not a run id")


def test_run_lacking_a_volume_is_refused(workspace: Workspace, changed_since_the_run: dict) -> None:
    more = replace(workspace.settings, volumes=(*VOLUMES, "nextcloud-data"))
    workspace.render(more, "-more")
    assert_refused(workspace.run("restore-full-more.sh"), "incomplete", "/volumes/nextcloud-data")


# --- 3. the metric moves only on success ---------------------------------------------------------


def test_failed_backups_leave_the_metric_and_repository_alone(workspace: Workspace, source: Cluster,
                                                             first_run: dict[str, object]) -> None:
    metric = workspace.metrics / METRICS_FILE
    before, snapshots = metric.read_bytes(), snapshot_count(workspace)
    os.utime(metric, (1, 1))
    wrong = workspace.tree.parent / "wrong-password"
    wrong.write_text("nope\n")
    failed = workspace.run("backup.sh", RESTIC_PASSWORD_FILE=str(wrong))
    assert failed.returncode != 0 and "wrong password" in failed.stderr

    nowhere = replace(workspace.settings, databases=(Database("gitea", PostgresServer("127.0.0.1", free_port())),))
    workspace.render(nowhere, "-nodb")
    failed = workspace.run("backup-nodb.sh")
    assert failed.returncode != 0 and "pg_dump" in failed.stderr

    failed = workspace.run("backup.sh", CERES_BACKUP_ROOT=str(workspace.tree.parent / "no-volumes-here"))
    assert failed.returncode != 0 and "volume gitea-data is not mounted" in failed.stderr
    assert metric.read_bytes() == before and metric.stat().st_mtime == 1
    assert snapshot_count(workspace) == snapshots
    assert not (workspace.tree / "databases").exists()


def test_the_metric_is_served_as_prometheus_text(workspace: Workspace, tools: dict[str, str],
                                                 first_run: dict[str, object]) -> None:
    port = free_port()
    command = metrics_server_command(replace(workspace.settings, metrics_dir=str(workspace.metrics)))
    assert command[:2] == ["httpd", "-f"]
    command[command.index("-p") + 1] = f"127.0.0.1:{port}"
    server = subprocess.Popen([tools["busybox"], *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{METRICS_PATH}", timeout=5) as response:
                    body, content_type = response.read().decode(), response.headers["Content-Type"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        stop_process(server, 10)
    assert content_type.startswith("text/plain"), content_type
    assert re.search(rf"^{SUCCESS_METRIC} \d+$", body, re.M), body


# --- 4. the drill --------------------------------------------------------------------------------


def test_drill_passes_on_a_fresh_run_and_fails_once_the_source_changed(
        workspace: Workspace, source: Cluster, throwaway: Cluster, first_run: dict[str, object]) -> None:
    fresh = workspace.run("backup.sh")
    assert fresh.returncode == 0, fresh.stderr
    drill_env = {"CERES_DRILL_PGHOST": "127.0.0.1", "CERES_DRILL_PGPORT": str(throwaway.port)}

    passed = workspace.run("restore-drill.sh", **drill_env)
    assert passed.returncode == 0, f"{passed.stdout}\n{passed.stderr}"
    assert "gitea: 3 tables match" in passed.stdout and "drill passed" in passed.stdout
    assert throwaway.sql("SELECT count(*) FROM repos", "gitea") == source.sql("SELECT count(*) FROM repos", "gitea")

    source.sql("UPDATE blobs SET data = '\\x00' WHERE id = 7", "gitea")
    try:
        failed = workspace.run("restore-drill.sh", **drill_env)
    finally:
        source.sql("UPDATE blobs SET data = decode(md5('7') || md5('49'), 'hex') WHERE id = 7", "gitea")
    assert failed.returncode != 0
    assert "gitea: DIFFERS" in failed.stdout and "public.blobs" in failed.stdout, failed.stdout
    assert "wiki: 1 tables match" in failed.stdout


def test_drill_refuses_to_restore_into_the_source(workspace: Workspace, source: Cluster,
                                                  first_run: dict[str, object]) -> None:
    before = databases_state(source)
    result = workspace.run("restore-drill.sh", CERES_DRILL_PGHOST="localhost", CERES_DRILL_PGPORT=str(source.port))
    assert_refused(result, "is the source server")
    assert databases_state(source) == before


# --- 5. rendering (no server) --------------------------------------------------------------------


def _settings(**changes: object) -> BackupSettings:
    server = PostgresServer("postgres")
    base = BackupSettings(repository="s3:https://s3.example.com/vault/ceres", retention=Retention(7, 4, 6),
                          databases=(Database("gitea", server), Database("keycloak", server)), volumes=VOLUMES)
    return replace(base, **changes)


@pytest.mark.parametrize("render", [backup_script, restore_full_script, restore_drill_script])
def test_scripts_parse_under_busybox_and_dash(render, tools: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text(render(_settings()))
    for shell in (["busybox", "sh"], ["dash"]):
        if shutil.which(shell[0]):
            result = subprocess.run([*shell, "-n", str(script)], capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, f"{shell}: {result.stderr}"
    assert script.read_text().startswith("#!/bin/sh\n") and "set -eu" in script.read_text()


@pytest.mark.parametrize("changes, message", [
    ({"databases": (Database("gitea", PostgresServer("postgres")),) * 2}, "each name once"),
    ({"volumes": ("gitea-data", "../etc")}, "volume name"),
    ({"repository": "/srv/repo\nrm -rf /"}, "restic repository"),
    ({"databases": (), "volumes": ()}, "nothing to back up"),
    ({"databases": (Database("a", PostgresServer("h1")), Database("b", PostgresServer("h2")))}, "its own name"),
    ({"root": "/backup dir"}, "directory"),
    ({"tags": ("ceres,x",)}, "tag"),
])
def test_settings_refuse_what_would_break_the_scripts(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(**changes)


@pytest.mark.parametrize("name", ["Gitea", "x; drop", "postgres", "template1", ""])
def test_database_names_are_plain_application_databases(name: str) -> None:
    with pytest.raises(ValueError):
        Database(name, PostgresServer("postgres"))


def test_image_adds_the_client_of_the_pinned_postgres_major() -> None:
    postgres_image, restic_image = BASE["services"]["postgres"]["image"], BASE["services"]["backup"]["image"]
    major = int(re.match(r"postgres:(\d+)", postgres_image).group(1))
    text = dockerfile(restic_image, major)
    assert text.startswith("# ") and f"FROM {restic_image}\n" in text
    assert f"apk add --no-cache postgresql{major}-client busybox-extras" in text
    assert "ENTRYPOINT []" in text  # the image's entrypoint is restic itself
    with pytest.raises(ValueError):
        dockerfile("restic/restic:0.18.0; rm", major)


def test_scripts_carry_no_secret_and_name_the_repository_default() -> None:
    settings = _settings()
    for text in (backup_script(settings), restore_full_script(settings), restore_drill_script(settings)):
        assert "DEFAULT_REPOSITORY=s3:https://s3.example.com/vault/ceres" in text
        assert "PGPASSWORD=" not in text.replace("PGPASSWORD=$CERES_DRILL_PGPASSWORD", "")
        assert "RESTIC_PASSWORD=" not in text
