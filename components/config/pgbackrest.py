"""pgBackRest for the prod PostgreSQL cluster: WAL archiving and physical backups, so the cluster
can be brought back to any moment since the oldest kept full backup (point-in-time recovery).
The logical dumps of `components/config/backup.py` stay: they restore one database anywhere; these
restore the whole cluster to a moment.

Pure functions of typed inputs: `pgbackrest_conf` (the file every member mounts), the server
parameters that archive every WAL segment, Patroni's `restore_command`, and the argv of each
operation (stanza-create, check, full/diff backup, point-in-time restore).
`tests/components/config/test_pgbackrest_real.py` runs them with Debian's pgbackrest and PostgreSQL.

The repository is a directory (tests, a single machine) or an S3-compatible bucket (prod: every
member reaches it, whichever leads). It is encrypted when `encrypted` is set. Its passphrase and
the S3 keys reach pgBackRest only through the environment (`CIPHER_PASS_ENV`, `S3_KEY_ENV`,
`S3_KEY_SECRET_ENV`), never this text. Every process that touches the repository needs them,
including the PostgreSQL server itself, which runs `archive_command` with its own environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from components.config.postgres import POSTGRES_PORT

# Where the member image keeps the config (`PgBackRestSettings.config_path`).
CONFIG_PATH = "/etc/pgbackrest/pgbackrest.conf"
# pgBackRest reads any option from PGBACKREST_<OPTION> (dashes as underscores).
CIPHER_PASS_ENV = "PGBACKREST_REPO1_CIPHER_PASS"
S3_KEY_ENV = "PGBACKREST_REPO1_S3_KEY"
S3_KEY_SECRET_ENV = "PGBACKREST_REPO1_S3_KEY_SECRET"
CIPHER_TYPE = "aes-256-cbc"
COMPRESS_TYPES = ("none", "gz", "bz2", "lz4", "zst")

_STANZA = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Paths go unquoted into archive_command and restore_command: PostgreSQL runs them through sh.
_PATH = re.compile(r"^/[A-Za-z0-9_./-]*$")

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

BackupType = Literal["full", "diff"]


@dataclass(frozen=True)
class S3Repository:
    """An S3-compatible bucket (AWS, MinIO, Ceph RGW, ...), always over TLS (pgBackRest has no
    plain-HTTP S3)."""

    endpoint: str
    bucket: str
    region: str
    # The repository's prefix inside the bucket: several stacks can share one bucket.
    path: str = "/pgbackrest"
    # "host": bucket.endpoint (AWS); "path": endpoint/bucket (most self-hosted stores).
    uri_style: Literal["host", "path"] = "host"
    port: int = 443
    # Off only for a store with a private CA the image does not trust (tests use a self-signed one).
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if not _HOST.match(self.endpoint):
            raise ValueError(f"endpoint={self.endpoint!r}: give a host name without scheme or path, e.g. s3.eu-central-1.amazonaws.com")
        if not _BUCKET.match(self.bucket):
            raise ValueError(f"bucket={self.bucket!r}: 3-63 lowercase letters, digits, '.', '-'")
        if not self.region or not _HOST.match(self.region):
            raise ValueError(f"region={self.region!r}: give the store's region, e.g. eu-central-1 (us-east-1 for most self-hosted stores)")
        if not _PATH.match(self.path):
            raise ValueError(f"path={self.path!r}: give an absolute prefix of letters, digits, '_', '.', '-', '/'")
        if self.uri_style not in ("host", "path"):
            raise ValueError(f"uri_style={self.uri_style!r}: use 'host' or 'path'")
        if not 0 < self.port < 65536:
            raise ValueError(f"port={self.port}: must be 1-65535")


@dataclass(frozen=True)
class PgBackRestSettings:
    """One stanza (the cluster) in one repository. Defaults match the Patroni image's layout
    (`PatroniSettings`: the postgres:17 image's data dir and socket)."""

    stanza: str
    # A directory or a bucket every member reaches: archive-push runs on whichever member leads.
    repository: str | S3Repository = "/var/lib/pgbackrest"
    encrypted: bool = True
    # Full backups kept; WAL older than the oldest kept full backup is expired with it.
    retention_full: int = 2
    # Parallel compression/transfer processes for backup and restore (archive-push stays single).
    process_max: int = 2
    compress_type: str = "zst"
    # A quiet server still closes a WAL segment this often, so at most this much of it is unarchived.
    archive_timeout_seconds: int = 60
    data_dir: str = "/var/lib/postgresql/data/pgdata"
    port: int = POSTGRES_PORT
    socket_dir: str = "/var/run/postgresql"
    config_path: str = CONFIG_PATH
    lock_path: str = "/tmp/pgbackrest"

    def __post_init__(self) -> None:
        if not _STANZA.match(self.stanza):
            raise ValueError(f"stanza {self.stanza!r}: use lowercase letters, digits and '-', starting with a letter")
        paths = ("data_dir", "socket_dir", "config_path", "lock_path")
        for name in (*paths, "repository") if isinstance(self.repository, str) else paths:
            value = getattr(self, name)
            if not _PATH.match(value):
                raise ValueError(f"{name}={value!r}: give an absolute path of letters, digits, '_', '.', '-', '/'")
        if self.compress_type not in COMPRESS_TYPES:
            raise ValueError(f"compress_type={self.compress_type!r}: use one of {', '.join(COMPRESS_TYPES)}")
        if self.retention_full < 1 or self.process_max < 1 or self.archive_timeout_seconds < 1:
            raise ValueError(f"retention_full={self.retention_full}, process_max={self.process_max}, "
                             f"archive_timeout_seconds={self.archive_timeout_seconds}: each must be at least 1")
        if not 0 < self.port < 65536:
            raise ValueError(f"port={self.port}: must be 1-65535")


def _repository_lines(repository: str | S3Repository) -> list[str]:
    if isinstance(repository, str):
        return [f"repo1-path={repository}"]
    lines = [
        "repo1-type=s3",
        f"repo1-path={repository.path}",
        f"repo1-s3-endpoint={repository.endpoint}",
        f"repo1-s3-bucket={repository.bucket}",
        f"repo1-s3-region={repository.region}",
        f"repo1-s3-uri-style={repository.uri_style}",
        f"repo1-storage-port={repository.port}",
    ]
    if not repository.verify_tls:
        lines.append("repo1-storage-verify-tls=n")
    return lines


def pgbackrest_conf(settings: PgBackRestSettings) -> str:
    repo = [*_repository_lines(settings.repository), f"repo1-retention-full={settings.retention_full}"]
    if settings.encrypted:
        repo.append(f"repo1-cipher-type={CIPHER_TYPE}")
    return "\n".join([
        f"# Rendered by CERES: pgBackRest for stanza {settings.stanza}. The repository passphrase comes from "
        f"{CIPHER_PASS_ENV}" + ("" if isinstance(settings.repository, str) else f", the S3 keys from {S3_KEY_ENV} and {S3_KEY_SECRET_ENV}") + ".",
        "[global]",
        *repo,
        f"process-max={settings.process_max}",
        f"compress-type={settings.compress_type}",
        f"lock-path={settings.lock_path}",
        # A backup starts with an immediate checkpoint instead of waiting up to checkpoint_timeout.
        "start-fast=y",
        # Containers log to stderr (PostgreSQL's log for archive-push); no log files to rotate.
        "log-level-console=info",
        "log-level-stderr=warn",
        "log-level-file=off",
        "",
        f"[{settings.stanza}]",
        f"pg1-path={settings.data_dir}",
        f"pg1-port={settings.port}",
        f"pg1-socket-path={settings.socket_dir}",
        "",
    ])


def _pgbackrest(settings: PgBackRestSettings) -> list[str]:
    return ["pgbackrest", f"--config={settings.config_path}", f"--stanza={settings.stanza}"]


def archive_command(settings: PgBackRestSettings) -> str:
    return " ".join([*_pgbackrest(settings), "archive-push", "%p"])


def archive_parameters(settings: PgBackRestSettings) -> dict[str, str]:
    """For Patroni's `bootstrap.dcs.postgresql.parameters` (and any PostgreSQL): every completed WAL
    segment goes to the repository. archive_mode needs a restart; archive_command a reload."""
    return {
        "archive_mode": "on",
        "archive_command": archive_command(settings),
        "archive_timeout": f"{settings.archive_timeout_seconds}s",
    }


def restore_command(settings: PgBackRestSettings) -> str:
    """For Patroni's `postgresql.recovery_conf.restore_command`: a replica (or a restored member)
    fetches from the repository the WAL its primary no longer keeps."""
    return " ".join([*_pgbackrest(settings), "archive-get", "%f", '"%p"'])


def stanza_create(settings: PgBackRestSettings) -> list[str]:
    """Once, on the primary, before the first backup; repeating it on an existing stanza is a no-op."""
    return [*_pgbackrest(settings), "stanza-create"]


def check(settings: PgBackRestSettings) -> list[str]:
    """Proves archiving works end to end: switches WAL and waits for that segment in the repository."""
    return [*_pgbackrest(settings), "check"]


def info(settings: PgBackRestSettings) -> list[str]:
    """The stanza's backups and archived WAL range, as JSON (for people and for checks)."""
    return [*_pgbackrest(settings), "--output=json", "info"]


def backup(settings: PgBackRestSettings, kind: BackupType) -> list[str]:
    """A full backup, or a differential one (the changes since the last full). Run on the primary."""
    if kind not in ("full", "diff"):
        raise ValueError(f"backup kind {kind!r}: use 'full' or 'diff'")
    return [*_pgbackrest(settings), f"--type={kind}", "backup"]


def point_in_time_restore(settings: PgBackRestSettings, target: datetime) -> list[str]:
    """Into a stopped server's empty (or `--delta`-able) data dir: the newest backup before
    `target`, then WAL replayed up to `target`, then promoted to a primary. Commits at exactly
    `target` are kept (PostgreSQL's recovery_target_inclusive)."""
    if target.tzinfo is None:
        raise ValueError(f"target {target.isoformat()}: give a timezone (a naive time is read in the server's zone)")
    return restore_to(settings, target.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") + "+00")


def restore_to(settings: PgBackRestSettings, moment: str) -> list[str]:
    """`point_in_time_restore` with the moment already in pgBackRest's syntax (UTC, `+00`), or a
    shell word that expands to it at run time (the member's entry script)."""
    return [*_pgbackrest(settings), "--delta", "--type=time", f"--target={moment}",
            "--target-action=promote", "restore"]


# The agent (components/config/pitr_agent.py) as the member image holds it, and its metrics port.
AGENT_PATH = "/usr/local/lib/ceres/pitr_agent.py"
AGENT_PORT = 9188
# A crashed agent (a bug, an unexpected answer) comes back; Patroni keeps running meanwhile.
_AGENT_RESTART_SECONDS = 10


def agent_command(settings: PgBackRestSettings, *, listen_host: str, full_every_hours: float,
                  diff_every_hours: float, interval_seconds: int = 60, port: int = AGENT_PORT,
                  script: str = AGENT_PATH) -> tuple[str, ...]:
    """The agent in every member, restarted if it ever exits: scheduled backups on the leader,
    metrics about the repository at http://listen_host:port/metrics."""
    if full_every_hours <= 0 or diff_every_hours <= 0 or interval_seconds < 1:
        raise ValueError(f"full_every_hours={full_every_hours}, diff_every_hours={diff_every_hours},"
                         f" interval_seconds={interval_seconds}: each must be above zero")
    agent = ["python3", script, "run", f"--pgbackrest-config={settings.config_path}", f"--stanza={settings.stanza}",
             f"--listen={listen_host}:{port}", f"--full-every-hours={full_every_hours:g}",
             f"--diff-every-hours={diff_every_hours:g}", f"--interval-seconds={interval_seconds}",
             f"--socket-dir={settings.socket_dir}", f"--port={settings.port}"]
    return ("sh", "-c", f'while :; do "$@"; sleep {_AGENT_RESTART_SECONDS}; done', "ceres-pitr-agent", *agent)
