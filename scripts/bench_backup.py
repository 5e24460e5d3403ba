"""Benchmark (not a test): CERES backup.sh + restore-full.sh against plain pg_dump -Fc + pg_restore
on the same database, as a ratio.

    .venv/bin/python scripts/bench_backup.py [--megabytes 1024]

Starts a throwaway PostgreSQL (Debian's, under /usr/lib/postgresql/*/bin, as the `postgres` user,
127.0.0.1 on a free port, everything in a temp dir removed at the end), fills one database to about
the asked size (a table with a primary key and a secondary index), then times, on the same data:
  plain:  pg_dump -Fc to a file;  pg_restore --create --clean --if-exists from it
  CERES:  backup.sh (dump to spool, restic backup into a new repository, forget --prune, check 1/30,
          metric);  restore-full.sh latest (staging restore from restic, checks, pg_restore)
The scripts run under busybox sh like in the container. Needs: apt-get install -y postgresql restic busybox.
"""

from __future__ import annotations

import argparse
import glob
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.config.backup import (  # noqa: E402
    BackupSettings,
    Database,
    PostgresServer,
    Retention,
    backup_script,
    restore_full_script,
)

PASSWORD = "bench-superuser"
APPLETS = ("sh", "cat", "chmod", "chown", "cmp", "cp", "date", "diff", "find", "grep", "head", "mkdir",
           "mktemp", "mv", "rm", "sed", "sort", "stat", "tail", "tr", "wc", "basename")
ROW_BYTES = 250  # on-disk bytes per generated row, heap plus both indexes (measured here: PostgreSQL 15)


def as_postgres(argv: list[str]) -> list[str]:
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        sys.exit(f"{argv[:3]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - start


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024, help="database size to generate (default 1024)")
    args = parser.parse_args()
    pg = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    work = Path(tempfile.mkdtemp(prefix="ceres-bench-"))
    shutil.chown(work, "postgres", "postgres")
    port = free_port()
    pg_env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LC_ALL": "C"}
    server = None
    try:
        subprocess.run(as_postgres([str(pg / "initdb"), "-D", str(work / "data"), "-U", "postgres", "--no-locale",
                                    "-E", "UTF8", "--auth-local=peer", "--auth-host=scram-sha-256"]),
                       env=pg_env, check=True, capture_output=True)
        log = open(work / "server.log", "wb")
        server = subprocess.Popen(as_postgres([
            str(pg / "postgres"), "-D", str(work / "data"), "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
            "-c", f"unix_socket_directories={work}", "-c", "shared_buffers=256MB", "-c", "max_wal_size=4GB",
            "-c", "maintenance_work_mem=256MB"]), env=pg_env, stdout=log, stderr=subprocess.STDOUT)
        while subprocess.run([str(pg / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
            time.sleep(0.2)

        def admin(sql: str, db: str = "postgres") -> str:
            return subprocess.run(as_postgres([str(pg / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(work),
                                               "-p", str(port), "-d", db, "-c", sql]),
                                  env=pg_env, check=True, capture_output=True, text=True).stdout.strip()

        rows = args.megabytes * 2**20 // ROW_BYTES
        print(f"generating ~{args.megabytes} MB ({rows} rows) ...", flush=True)
        admin(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
        admin("CREATE DATABASE bench")
        started = time.monotonic()
        admin("CREATE TABLE events (id bigint PRIMARY KEY, account int, created timestamptz, payload text)", "bench")
        admin("INSERT INTO events SELECT g, g % 9973, timestamptz '2024-01-01' + g * interval '1 second', "
              f"md5(g::text) || md5((g * 31)::text) || repeat(chr(65 + g % 26), 40) FROM generate_series(1, {rows}) g",
              "bench")
        admin("CREATE INDEX events_account ON events (account, created)", "bench")
        admin("VACUUM ANALYZE events", "bench")
        size_mb = int(admin("SELECT pg_database_size('bench')")) / 2**20
        print(f"generated {size_mb:.0f} MB in {time.monotonic() - started:.0f}s", flush=True)

        root = work / "ceres"
        bindir = work / "bin"
        bindir.mkdir()
        for applet in APPLETS:
            (bindir / applet).symlink_to(shutil.which("busybox"))
        (work / "pgpass").write_text(f"*:*:*:postgres:{PASSWORD}\n")
        (work / "pgpass").chmod(0o600)
        (work / "restic-password").write_text("bench\n")
        env = {"PATH": f"{bindir}:{pg}:/usr/bin:/bin", "HOME": str(work), "LC_ALL": "C",
               "PGPASSFILE": str(work / "pgpass"), "RESTIC_PASSWORD_FILE": str(work / "restic-password"),
               "RESTIC_REPOSITORY": str(work / "repo"), "RESTIC_CACHE_DIR": str(work / "cache"),
               "CERES_BACKUP_ROOT": str(root), "CERES_BACKUP_METRICS_DIR": str(work / "metrics")}
        settings = BackupSettings(repository=str(work / "repo"), retention=Retention(7, 4, 6),
                                  databases=(Database("bench", PostgresServer("127.0.0.1", port)),), volumes=())
        (work / "backup.sh").write_text(backup_script(settings))
        (work / "restore-full.sh").write_text(restore_full_script(settings))
        conn = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]

        plain_dump = timed([str(pg / "pg_dump"), *conn, "-Fc", "-f", str(work / "plain.dump"), "bench"], env)
        dump_mb = (work / "plain.dump").stat().st_size / 2**20
        plain_restore = timed([str(pg / "pg_restore"), *conn, "-d", "postgres", "--create", "--clean", "--if-exists",
                               "--exit-on-error", str(work / "plain.dump")], env)
        (work / "plain.dump").unlink()
        ceres_backup = timed(["busybox", "sh", str(work / "backup.sh")], env)
        repo_mb = du_mb(work / "repo")
        ceres_restore = timed(["busybox", "sh", str(work / "restore-full.sh")], env)
        rows_back = admin("SELECT count(*) FROM events", "bench")
        assert int(rows_back) == rows, f"restored {rows_back} rows, expected {rows}"

        print(f"\ndatabase {size_mb:.0f} MB, {rows} rows; pg_dump -Fc {dump_mb:.0f} MB; restic repository {repo_mb:.0f} MB")
        print(f"{'':24}{'plain':>10}{'CERES':>10}{'ratio':>8}")
        for what, plain, ceres in (("backup", plain_dump, ceres_backup), ("restore", plain_restore, ceres_restore),
                                   ("total", plain_dump + plain_restore, ceres_backup + ceres_restore)):
            print(f"{what:24}{plain:>9.1f}s{ceres:>9.1f}s{ceres / plain:>8.2f}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
