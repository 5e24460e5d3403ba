"""Backup and restore scripts: every PostgreSQL database and every stateful volume into one restic
repository, one command to bring a whole run back, and a drill that proves a run restores.

Pure functions of typed inputs returning POSIX sh (the restic image is Alpine: busybox sh, no bash).
`tests/components/config/test_backup_real.py` runs the same text under busybox with Debian's
restic and PostgreSQL.

One run = one restic snapshot. backup.sh first spools `pg_dump -Fc` of every database (and
`pg_dumpall --globals-only` of every server) to `<root>/databases`, then takes ONE snapshot of
that spool and of every volume under `<root>/volumes/<volume>`, tagged `run:<run id>`. Why a spool
and not `pg_dump | restic backup --stdin`: a dump that dies half way fails the run before anything
reaches the repository (without pipefail a pipe would store a truncated dump as a good snapshot),
and a run is all-or-nothing: the repository never holds half a run that restore must detect.
The price is temporary disk for the compressed dumps. Each database's dump is consistent in
itself; databases are dumped one after the other, not in one transaction.

In the snapshot (paths are relative to the root, so where things are mounted does not matter):
    /databases/<database>.dump        pg_dump -Fc
    /databases/globals-<server>.sql   roles and memberships of that server
    /databases/MANIFEST               what the run contains, for people
    /volumes/<volume>/...             the volume's files as they were
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

# The label on the containers a restore goes through (the data tier, the HA members, the backup):
# every other container of the stack stops first (scripts/restore-full.sh, ceres restore-pitr).
RESTORE_LABEL = "io.ceres.restore"
KEEP_RUNNING = "keep-running"

# The alert rules read this gauge (components/config/alert_rules.py BACKUP_SUCCESS_METRIC).
SUCCESS_METRIC = "ceres_backup_last_success_timestamp_seconds"

# In the container: volumes mounted under ROOT/volumes/<volume> (read-only for backups,
# read-write for a restore), the dump spool at ROOT/databases, restore staging at ROOT/staging.
ROOT = "/backup"
# backup.sh writes METRICS_FILE here; `httpd -f -p METRICS_PORT -h METRICS_DIR` (busybox) serves it.
METRICS_DIR = "/var/lib/ceres-backup/metrics"
METRICS_FILE = "metrics.txt"
METRICS_PORT = 9108
# busybox httpd types a file by its extension: `.txt` is served as text/plain, which Prometheus 3
# accepts as the text exposition format (no extension would be application/octet-stream, refused).
METRICS_PATH = "/" + METRICS_FILE

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
_VOLUME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PATH = re.compile(r"^/[A-Za-z0-9_./-]*$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$")


def _require(pattern: re.Pattern[str], value: str, what: str, allowed: str) -> None:
    if not pattern.match(value):
        raise ValueError(f"{value!r} cannot be {what}: use {allowed}")


@dataclass(frozen=True)
class PostgresServer:
    """How the backup reaches a PostgreSQL server. The role must be a superuser (roles, every
    database, large objects); its password comes from PGPASSFILE or PGPASSWORD, never from here."""

    host: str
    port: int = 5432
    user: str = "postgres"
    # Names the server's roles in a run (globals-<name>.sql): stable when its address changes, so
    # a run restores into a re-created or moved server.
    name: str = "postgres"

    def __post_init__(self) -> None:
        _require(_HOST, self.host, "a PostgreSQL host", "a host name or IP address")
        if not 0 < self.port < 65536:
            raise ValueError(f"port={self.port}: must be 1-65535")
        _require(_IDENTIFIER, self.user, "a PostgreSQL role", "lowercase letters, digits and '_'")
        _require(_IDENTIFIER, self.name, "a server name", "lowercase letters, digits and '_'")

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class Database:
    name: str
    server: PostgresServer

    def __post_init__(self) -> None:
        _require(_IDENTIFIER, self.name, "a database to back up", "lowercase letters, digits and '_'")
        if self.name in ("postgres", "template0", "template1"):
            raise ValueError(f"{self.name!r} is a maintenance database; back up the application databases")


@dataclass(frozen=True)
class Retention:
    keep_daily: int
    keep_weekly: int = 0
    keep_monthly: int = 0

    def __post_init__(self) -> None:
        if self.keep_daily < 1 or self.keep_weekly < 0 or self.keep_monthly < 0:
            raise ValueError(f"{self}: keep_daily must be at least 1, the others at least 0")


@dataclass(frozen=True)
class BackupSettings:
    repository: str  # restic repository string: a path in dev, `s3:...` in prod
    retention: Retention
    databases: tuple[Database, ...]
    volumes: tuple[str, ...]  # each mounted at <root>/volumes/<volume>
    # restic's --host for every snapshot: fixed, so retention groups survive a re-created container.
    hostname: str = "ceres"
    tags: tuple[str, ...] = ("ceres",)
    # restic check reads 1/N of the pack data each run (a different part each day): all of it over N days.
    check_read_parts: int = 30
    root: str = ROOT
    metrics_dir: str = METRICS_DIR
    servers: tuple[PostgresServer, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.repository or any(c in self.repository for c in "\n\r\0"):
            raise ValueError(f"repository={self.repository!r}: give a restic repository string")
        if not self.databases and not self.volumes:
            raise ValueError("nothing to back up: give at least one database or volume")
        names = [db.name for db in self.databases]
        if len(set(names)) != len(names):
            raise ValueError(f"databases {names}: each name once (one dump file per name)")
        if len(set(self.volumes)) != len(self.volumes):
            raise ValueError(f"volumes {list(self.volumes)}: each volume once")
        for volume in self.volumes:
            _require(_VOLUME, volume, "a volume name", "letters, digits, '_', '.', '-'")
        for tag in (self.hostname, *self.tags):
            _require(_TAG, tag, "a restic host or tag", "letters, digits, '_', '.', '-'")
        if not self.tags:
            raise ValueError("tags: give at least one (restore finds CERES runs by them)")
        if self.check_read_parts < 1:
            raise ValueError(f"check_read_parts={self.check_read_parts}: at least 1")
        for path in (self.root, self.metrics_dir):
            _require(_PATH, path, "a directory", "an absolute path of letters, digits, '_', '.', '-', '/'")
        servers = tuple(dict.fromkeys(db.server for db in self.databases))
        if len({s.key for s in servers}) != len(servers):
            raise ValueError(f"servers {[s.key for s in servers]}: give each server its own name (and one superuser)")
        object.__setattr__(self, "servers", servers)


def _q(value: str) -> str:
    return shlex.quote(value)


def _conn(server: PostgresServer) -> str:
    return f"-h {_q(server.host)} -p {server.port} -U {_q(server.user)}"


# --- shared shell fragments ---------------------------------------------------------------------


def _prelude(settings: BackupSettings, program: str) -> str:
    return f"""\
#!/bin/sh
# Rendered by CERES ({program}). Reads: RESTIC_REPOSITORY (default below), RESTIC_PASSWORD_FILE or
# RESTIC_PASSWORD, the backend's own credentials, PGPASSFILE or PGPASSWORD, CERES_BACKUP_ROOT.
set -eu
umask 077
PROGRAM={program}
ROOT="${{CERES_BACKUP_ROOT:-{settings.root}}}"
DEFAULT_REPOSITORY={_q(settings.repository)}
RESTIC_REPOSITORY="${{RESTIC_REPOSITORY:-$DEFAULT_REPOSITORY}}"
export RESTIC_REPOSITORY
RESTIC_HOST={_q(settings.hostname)}
RESTIC_TAGS={_q(",".join(settings.tags))}
export PGCONNECT_TIMEOUT="${{PGCONNECT_TIMEOUT:-10}}"

log() {{ printf '%s: %s\\n' "$PROGRAM" "$*" >&2; }}
# Before anything changed: the cause, the fix, and the promise that nothing was touched.
refuse() {{
\tprintf '%s: REFUSED: %s\\n  fix: %s\\n  nothing was changed.\\n' "$PROGRAM" "$1" "$2" >&2
\texit 1
}}
fail() {{ printf '%s: FAILED: %s\\n' "$PROGRAM" "$*" >&2; exit 1; }}

require_password() {{
\tif [ -n "${{RESTIC_PASSWORD_FILE:-}}" ]; then
\t\t[ -r "$RESTIC_PASSWORD_FILE" ] || refuse "RESTIC_PASSWORD_FILE=$RESTIC_PASSWORD_FILE cannot be read" \\
\t\t\t"mount the repository password file there (readable by this user)"
\telif [ -z "${{RESTIC_PASSWORD:-}}${{RESTIC_PASSWORD_COMMAND:-}}" ]; then
\t\trefuse "no restic password given" "set RESTIC_PASSWORD_FILE to the repository's password file"
\tfi
}}

# 0: the repository opens; 2: there is none at RESTIC_REPOSITORY; anything else refuses.
open_repository() {{
\trequire_password
\tif problem=$(restic cat config 2>&1 >/dev/null); then return 0; fi
\tcase "$problem" in
\t*"wrong password"*)
\t\trefuse "wrong password for the restic repository $RESTIC_REPOSITORY" \\
\t\t\t"point RESTIC_PASSWORD_FILE at the password the repository was created with" ;;
\t*"Is there a repository"*|*"does not exist"*)
\t\treturn 2 ;;
\t*)
\t\trefuse "cannot open the restic repository $RESTIC_REPOSITORY: $problem" \\
\t\t\t"check the location and the backend's credentials; then run 'restic check'" ;;
\tesac
}}
"""


def _run_lookup() -> str:
    """Shell functions that turn `latest` or a run id into the snapshot of that run."""
    return """\
# Runs are tagged run:<UTC time>, so the newest run is the greatest id.
list_runs() {
\trestic snapshots --json --host "$RESTIC_HOST" --tag "$RESTIC_TAGS" >"$WORK/snapshots.json" 2>"$WORK/snapshots.err" \\
\t\t|| refuse "cannot list the snapshots of $RESTIC_REPOSITORY: $(cat "$WORK/snapshots.err")" "run 'restic snapshots' to see why"
\tgrep -o '"run:[0-9A-Za-z]*"' "$WORK/snapshots.json" | sed 's/^"run://; s/"$//' | sort -u
}

# Sets RUN_ID and SNAPSHOT for $1 (`latest` or a run id), or refuses.
find_run() {
\tif [ "$1" != latest ] && ! printf '%s\\n' "$1" | grep -qx '[0-9]\\{8\\}T[0-9]\\{6\\}Z'; then
\t\trefuse "'$1' is not a run id" "give 'latest' or a run id such as 20250101T030000Z (see 'restic snapshots --tag $RESTIC_TAGS')"
\tfi
\truns=$(list_runs)
\t[ -n "$runs" ] || refuse "the repository $RESTIC_REPOSITORY holds no CERES backup run" \\
\t\t"run backup.sh first, or point RESTIC_REPOSITORY at the repository that has them"
\tif [ "$1" = latest ]; then RUN_ID=$(printf '%s\\n' "$runs" | tail -n 1); else RUN_ID=$1; fi
\tprintf '%s\\n' "$runs" | grep -qxF "$RUN_ID" || refuse "no backup run '$RUN_ID' in $RESTIC_REPOSITORY" \\
\t\t"give one of: $(printf '%s\\n' "$runs" | tail -n 5 | tr '\\n' ' ')(or 'latest')"
\tSNAPSHOT=$(restic snapshots --json --host "$RESTIC_HOST" --tag "$RESTIC_TAGS,run:$RUN_ID" \\
\t\t| grep -o '"id":"[0-9a-f]*"' | sed 's/^"id":"//; s/"$//' | tail -n 1)
\t[ -n "$SNAPSHOT" ] || refuse "run '$RUN_ID' has no snapshot" "choose another run"
}

# Restores the parts ($2...) of snapshot $1 into the work directory; restic verifies every blob
# it reads, so a damaged repository stops here, before anything outside the work directory changed.
stage() {
\tsnapshot=$1; shift
\tincludes=""
\tfor part in "$@"; do includes="$includes --include $part"; done
\t# shellcheck disable=SC2086  # the parts are rendered names without spaces
\tif ! restic restore "$snapshot" --target "$WORK/stage" $includes >"$WORK/restic-restore.log" 2>&1; then
\t\trefuse "run $RUN_ID does not read back whole into $WORK (damaged repository, or no room): $(tail -n 3 "$WORK/restic-restore.log" | tr '\\n' ' ')" \\
\t\t\t"if restic names damaged data, run 'restic check --read-data' and restore an older run (restic snapshots) or repair it ('restic repair'); if the disk is full, point CERES_RESTORE_STAGING at a bigger one"
\tfi
}

make_work_dir() {
\tstaging="${CERES_RESTORE_STAGING:-$ROOT/staging}"
\tmkdir -p "$staging" 2>/dev/null && WORK=$(mktemp -d "$staging/restore.XXXXXX") \\
\t\t|| refuse "cannot make a work directory under $staging" "set CERES_RESTORE_STAGING to a writable directory with room for one run"
\ttrap 'rm -rf "$WORK"' EXIT
\ttrap 'exit 130' INT TERM
}

# Refuses unless the server answers and the role can restore everything (superuser).
check_server() {
\tif ! answer=$(psql -X -At -h "$1" -p "$2" -U "$3" -d postgres \\
\t\t-c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user" 2>&1); then
\t\trefuse "PostgreSQL at $1:$2 (as $3) is unreachable: $(printf '%s' "$answer" | head -n 2 | tr '\\n' ' ')" \\
\t\t\t"start the database (and only it), check the host/port and PGPASSFILE/PGPASSWORD, then run this again"
\tfi
\t[ "$answer" = t ] || refuse "role $3 on $1:$2 is not a superuser" "restore as the server's superuser (it recreates roles and databases)"
}
"""


# --- backup.sh ----------------------------------------------------------------------------------


def backup_script(settings: BackupSettings) -> str:
    """Dump every database and the roles, take one snapshot with every volume, apply retention,
    check part of the repository, and only then record the success metric. Any failure exits
    non-zero and leaves the metric as it was."""
    retention = settings.retention
    keep = f"--keep-daily {retention.keep_daily}"
    if retention.keep_weekly:
        keep += f" --keep-weekly {retention.keep_weekly}"
    if retention.keep_monthly:
        keep += f" --keep-monthly {retention.keep_monthly}"
    dumps = "".join(
        f"pg_dumpall {_conn(server)} --globals-only --file \"$SPOOL/globals-{server.key}.sql\"\n"
        for server in settings.servers
    ) + "".join(
        f"pg_dump {_conn(db.server)} -Fc --file \"$SPOOL/{db.name}.dump\" {_q(db.name)}\n"
        for db in settings.databases
    )
    volume_checks = "".join(
        f"[ -d \"$ROOT/volumes/{v}\" ] || fail \"volume {v} is not mounted at $ROOT/volumes/{v}\"\n"
        for v in settings.volumes
    )
    paths = " ".join(["databases", *(f"volumes/{v}" for v in settings.volumes)])
    manifest = "\\n".join([
        *(f"database {db.name} {db.server.host}:{db.server.port}" for db in settings.databases),
        *(f"globals {server.key}" for server in settings.servers),
        *(f"volume {v}" for v in settings.volumes),
    ])
    return _prelude(settings, "backup") + f"""
METRICS_DIR="${{CERES_BACKUP_METRICS_DIR:-{settings.metrics_dir}}}"
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
SPOOL="$ROOT/databases"
trap 'rm -rf "$SPOOL"' EXIT
trap 'exit 130' INT TERM

# The first run creates the repository; a wrong password or an unreadable one never does.
open_repository || {{ log "no repository at $RESTIC_REPOSITORY yet: creating it"; restic init >&2; }}
restic unlock >&2  # removes only locks left by runs that died

{volume_checks}rm -rf "$SPOOL"
mkdir -p "$SPOOL"
log "run $RUN_ID: dumping databases"
{dumps}printf 'run %s\\n{manifest}\\n' "$RUN_ID" >"$SPOOL/MANIFEST"

log "run $RUN_ID: snapshot"
cd "$ROOT"
restic backup --host "$RESTIC_HOST" --tag "$RESTIC_TAGS,run:$RUN_ID" {paths} >&2

log "run $RUN_ID: retention and check"
restic forget --host "$RESTIC_HOST" --tag "$RESTIC_TAGS" --group-by host {keep} --prune >&2
part=$(( $(date +%s) / 86400 % {settings.check_read_parts} + 1 ))
restic check --read-data-subset="$part/{settings.check_read_parts}" >&2

# Written last and renamed into place: the scraper never sees half a file, and only a run that
# got this far moves the time.
mkdir -p "$METRICS_DIR"
tmp="$METRICS_DIR/.{METRICS_FILE}.$$"
{{
\techo "# HELP {SUCCESS_METRIC} Unix time the last backup run that succeeded finished."
\techo "# TYPE {SUCCESS_METRIC} gauge"
\techo "{SUCCESS_METRIC} $(date +%s)"
}} >"$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$METRICS_DIR/{METRICS_FILE}"
log "run $RUN_ID: done"
echo "$RUN_ID"
"""


# --- restore-full.sh ----------------------------------------------------------------------------


def _snapshot_checks(settings: BackupSettings) -> str:
    wanted = [
        *(f"/databases/globals-{s.key}.sql" for s in settings.servers),
        *(f"/databases/{db.name}.dump" for db in settings.databases),
        *(f"/volumes/{v}" for v in settings.volumes),
    ]
    return "".join(f"{_q(path)} \\\n" for path in wanted)


def _restore_roles(server: PostgresServer) -> str:
    # The restoring superuser keeps the password it connected with: the run's copy may be older.
    own = server.user
    return f"""\
sed -e '/^CREATE ROLE {own};$/d' -e '/^ALTER ROLE {own} WITH /d' \\
\t"$WORK/stage/databases/globals-{server.key}.sql" >"$WORK/globals.sql"
psql -X -q {_conn(server)} -d postgres -v ON_ERROR_STOP=0 -f "$WORK/globals.sql" >/dev/null 2>"$WORK/globals.err" \\
\t|| fail "restoring the roles of {server.key}: $(cat "$WORK/globals.err")"
# Roles that already exist are expected (a fresh server has none, a used one has them all).
if grep 'ERROR:' "$WORK/globals.err" | grep -v 'already exists' >&2; then fail "restoring the roles of {server.key}"; fi
echo "  roles of {server.host}:{server.port}: $(grep -c '^CREATE ROLE' "$WORK/globals.sql" || true) restored"
"""


# Shell functions of restore-full.sh, defined once and called per database and per volume.
_RESTORE_FUNCTIONS = """\
# --create with --clean: the database is dropped and made again as it was (owner, settings, ACL),
# so nothing written after the run survives. Owners are kept: the roles exist from the globals.
# Arguments: host port user database.
restore_database() {
\tpsql -X -q -h "$1" -p "$2" -U "$3" -d postgres -v ON_ERROR_STOP=1 \\
\t\t-c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$4' AND pid <> pg_backend_pid()" >/dev/null
\tpg_restore -h "$1" -p "$2" -U "$3" -d postgres --create --clean --if-exists --exit-on-error "$WORK/stage/databases/$4.dump" \\
\t\t|| fail "restoring database $4 (it may be incomplete now: fix the cause and run this again)"
\ttables=$(psql -X -At -h "$1" -p "$2" -U "$3" -d "$4" -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
\techo "  database $4: $tables tables"
}

# The volume emptied, then the run's copy with its root's owner and mode. Argument: volume.
restore_volume() {
\ttarget="$ROOT/volumes/$1"
\tsource="$WORK/stage/volumes/$1"
\tmkdir -p "$target"
\tfind "$target" -mindepth 1 -maxdepth 1 -exec rm -rf {} \\;
\tcp -a "$source/." "$target/"
\tchown "$(stat -c %u:%g "$source")" "$target"
\tchmod "$(stat -c %a "$source")" "$target"
\techo "  volume $1: $(find "$target" -type f | wc -l) files"
}
"""


def _restore_database(db: Database) -> str:
    return f"restore_database {_q(db.server.host)} {db.server.port} {_q(db.server.user)} {_q(db.name)}\n"


def _restore_volume(volume: str) -> str:
    return f"restore_volume {_q(volume)}\n"


def restore_full_script(settings: BackupSettings) -> str:
    """`restore-full.sh [latest|<run id>]`: roles, then every database, then every volume, of one
    run. Everything that can be checked is checked before the first change: the repository opens,
    the run exists and holds every expected part, each server answers as a superuser, the volume
    root is writable, and the run's data reads back whole into a staging directory."""
    servers = "".join(f"check_server {_q(s.host)} {s.port} {_q(s.user)}\n" for s in settings.servers)
    dumps = " ".join(f'"$WORK/stage/databases/{db.name}.dump"' for db in settings.databases)
    archive_check = f"""\
for dump in {dumps}; do
\tpg_restore --list "$dump" >/dev/null 2>&1 || refuse "$(basename "$dump") in run $RUN_ID is not a readable dump" "restore an older run"
done
""" if settings.databases else ""
    return _prelude(settings, "restore-full") + _run_lookup() + _RESTORE_FUNCTIONS + f"""
[ $# -le 1 ] || refuse "too many arguments" "usage: restore-full.sh [latest|<run id>]"
if open_repository; then :; else
\trefuse "no restic repository at $RESTIC_REPOSITORY" "set RESTIC_REPOSITORY to where the backups are (and mount it)"
fi
make_work_dir
find_run "${{1:-latest}}"

restic ls "$SNAPSHOT" >"$WORK/listing" 2>"$WORK/ls.err" \\
\t|| refuse "cannot list run $RUN_ID: $(cat "$WORK/ls.err")" "run 'restic check' on the repository"
missing=""
for path in \\
{_snapshot_checks(settings)}; do
\tgrep -qxF "$path" "$WORK/listing" || missing="$missing $path"
done
[ -z "$missing" ] || refuse "run $RUN_ID is incomplete, it lacks:$missing" "restore a run made with the current set of databases and volumes"

{servers}mkdir -p "$ROOT/volumes" 2>/dev/null && [ -w "$ROOT/volumes" ] \\
\t|| refuse "$ROOT/volumes is not writable" "mount the volumes read-write under $ROOT/volumes"

stage "$SNAPSHOT" /databases {" ".join(f"/volumes/{v}" for v in settings.volumes)}
{archive_check}
log "restoring run $RUN_ID (snapshot $SNAPSHOT): checks passed, changing things now"
echo "restored run $RUN_ID (snapshot $SNAPSHOT) from $RESTIC_REPOSITORY:"
{"".join(_restore_roles(s) for s in settings.servers)}{"".join(_restore_database(db) for db in settings.databases)}{"".join(_restore_volume(v) for v in settings.volumes)}"""


# --- restore-drill.sh ---------------------------------------------------------------------------

# One line per table (and the sequences, and the large objects): name, rows, checksum. The
# checksum sums a 60-bit hash of every row: independent of row order, bounded in memory
# whatever the table's size.
_TABLES_SQL = ("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
               "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
_ROW_SQL = ("SELECT count(*) || ' ' || coalesce(sum(('x' || left(md5(t::text), 15))::bit(60)::bigint), 0) "
            "FROM %s AS t")
_SEQUENCES_SQL = ("SELECT coalesce(string_agg(format('%I.%I=%s', schemaname, sequencename, last_value), ' ' "
                  "ORDER BY schemaname, sequencename), '') FROM pg_sequences")
_LARGE_OBJECTS_SQL = ("SELECT count(*) || ' ' || coalesce(md5(string_agg(md5(lo_get(oid)), '' ORDER BY oid)), '') "
                      "FROM pg_largeobject_metadata")


def _fingerprint_function() -> str:
    return f"""\
# fingerprint HOST PORT USER DATABASE: what must be equal between source and restored copy.
fingerprint() {{
\tpsql -X -At -h "$1" -p "$2" -U "$3" -d "$4" -v ON_ERROR_STOP=1 -c {_q(_TABLES_SQL)} >"$WORK/tables" \\
\t\t|| return 1
\twhile IFS= read -r table; do
\t\trow=$(psql -X -At -h "$1" -p "$2" -U "$3" -d "$4" -v ON_ERROR_STOP=1 -c "$(printf {_q(_ROW_SQL)} "$table")") \\
\t\t\t|| return 1
\t\techo "table $table $row"
\tdone <"$WORK/tables"
\tsequences=$(psql -X -At -h "$1" -p "$2" -U "$3" -d "$4" -v ON_ERROR_STOP=1 -c {_q(_SEQUENCES_SQL)}) || return 1
\techo "sequences $sequences"
\tobjects=$(psql -X -At -h "$1" -p "$2" -U "$3" -d "$4" -v ON_ERROR_STOP=1 -c {_q(_LARGE_OBJECTS_SQL)}) || return 1
\techo "large-objects $objects"
}}
"""


def _drill_database(db: Database) -> str:
    s = db.server
    name = db.name
    return f"""\
# Owners and grants are left out: the throwaway server has none of the source's roles, and the
# drill must never rewrite its superuser's password from the run's globals.
pg_restore -h "$DRILL_HOST" -p "$DRILL_PORT" -U "$DRILL_USER" -d postgres --create --clean --if-exists \\
\t--no-owner --no-privileges --exit-on-error "$WORK/stage/databases/{name}.dump" \\
\t|| fail "run $RUN_ID: database {name} does not restore"
fingerprint {_q(s.host)} {s.port} {_q(s.user)} {name} >"$WORK/{name}.source" || fail "cannot read the source database {name}"
with_drill_password fingerprint "$DRILL_HOST" "$DRILL_PORT" "$DRILL_USER" {name} >"$WORK/{name}.restored" \\
\t|| fail "cannot read the restored database {name}"
if cmp -s "$WORK/{name}.source" "$WORK/{name}.restored"; then
\techo "  {name}: $(grep -c '^table ' "$WORK/{name}.source" || true) tables match"
else
\techo "  {name}: DIFFERS from the source (- source, + restored):"
\tdiff -u "$WORK/{name}.source" "$WORK/{name}.restored" | grep '^[-+][^-+]' | sed 's/^/    /' || true
\tdifferences=$((differences + 1))
fi
"""


def restore_drill_script(settings: BackupSettings) -> str:
    """`restore-drill.sh [latest|<run id>]`: restores the run's databases into a throwaway
    PostgreSQL (CERES_DRILL_PGHOST, CERES_DRILL_PGPORT, CERES_DRILL_PGUSER, password from
    CERES_DRILL_PGPASSWORD or PGPASSFILE) and compares every table's row count and checksum, the
    sequences and the large objects with the live source. Exits 1 on any difference: run it right
    after a backup, or against a source nobody writes to."""
    servers = "".join(f"check_server {_q(s.host)} {s.port} {_q(s.user)}\n" for s in settings.servers)
    same_server = "".join(
        f"[ \"$(system_id {_q(s.host)} {s.port} {_q(s.user)})\" != \"$drill_id\" ] || refuse "
        f"\"the drill server is the source server {s.host}:{s.port}\" \"give a throwaway PostgreSQL in CERES_DRILL_PGHOST\"\n"
        for s in settings.servers
    )
    return _prelude(settings, "restore-drill") + _run_lookup() + _fingerprint_function() + f"""
[ $# -le 1 ] || refuse "too many arguments" "usage: restore-drill.sh [latest|<run id>]"
DRILL_HOST="${{CERES_DRILL_PGHOST:-}}"
DRILL_PORT="${{CERES_DRILL_PGPORT:-5432}}"
DRILL_USER="${{CERES_DRILL_PGUSER:-postgres}}"
[ -n "$DRILL_HOST" ] || refuse "CERES_DRILL_PGHOST is not set" "give the throwaway PostgreSQL's host (and CERES_DRILL_PGPORT, CERES_DRILL_PGUSER)"
with_drill_password() {{
\tif [ -n "${{CERES_DRILL_PGPASSWORD:-}}" ]; then PGPASSWORD=$CERES_DRILL_PGPASSWORD "$@"; else "$@"; fi
}}
system_id() {{
\tpsql -X -At -h "$1" -p "$2" -U "$3" -d postgres -c "SELECT system_identifier FROM pg_control_system()"
}}

if open_repository; then :; else
\trefuse "no restic repository at $RESTIC_REPOSITORY" "set RESTIC_REPOSITORY to where the backups are"
fi
make_work_dir
find_run "${{1:-latest}}"
{servers}with_drill_password check_server "$DRILL_HOST" "$DRILL_PORT" "$DRILL_USER"
drill_id=$(with_drill_password system_id "$DRILL_HOST" "$DRILL_PORT" "$DRILL_USER")
# Restoring into the source itself would overwrite production with the run.
{same_server}stage "$SNAPSHOT" /databases

echo "drill of run $RUN_ID (snapshot $SNAPSHOT) into $DRILL_HOST:$DRILL_PORT:"
differences=0
{"".join(_drill_database(db) for db in settings.databases)}
[ "$differences" -eq 0 ] || fail "$differences database(s) differ between run $RUN_ID and the source"
echo "drill passed: every table, sequence and large object matches"
"""


# --- the image ----------------------------------------------------------------------------------


def dockerfile(base_image: str, postgres_major: int) -> str:
    """The pinned restic image plus the PostgreSQL client of the server's major version (pg_dump
    must not be older than the server) and busybox-extras for `httpd` (Alpine's busybox has no
    httpd applet). The build fails if either is missing."""
    _require(_IMAGE, base_image, "a base image", "a pinned image reference")
    if not 12 <= postgres_major <= 99:
        raise ValueError(f"postgres_major={postgres_major}: give the server's major version, e.g. 17")
    return f"""\
# restic with the PostgreSQL {postgres_major} client tools and a static file server for the metric.
FROM {base_image}
RUN set -eux; \\
\tapk add --no-cache postgresql{postgres_major}-client busybox-extras; \\
\tpg_dump --version | grep -q ' {postgres_major}\\.'; \\
\tcommand -v httpd
ENTRYPOINT []
"""


def entry_script(settings: BackupSettings, schedule: str, pgpass_source: str | None) -> str:
    """The container's main process: the backup on `schedule` (busybox crond, logs on the
    container's output) and the metric file served over HTTP (busybox httpd).

    libpq ignores a password file others can read, so the uploaded secret is copied to a 0600
    file first. Until the first run succeeds the metric file holds no sample, only a comment:
    the scrape works (no target-down alert), and the backup alerts see no backup yet."""
    if not re.fullmatch(r"[0-9*/,-]+( [0-9*/,-]+){4}", schedule):
        raise ValueError(f"schedule={schedule!r}: give five cron fields, e.g. '0 3 * * *'")
    if pgpass_source is not None:
        _require(_PATH, pgpass_source, "a file", "an absolute path of letters, digits, '_', '.', '-', '/'")
    # Without a database to dump there is no password file to install.
    pgpass = f'install -m 600 {_q(pgpass_source)} "$PGPASSFILE"\n' if pgpass_source is not None else ""
    metrics = f"{settings.metrics_dir}/{METRICS_FILE}"
    return f"""\
#!/bin/sh
# Rendered by CERES (backup entry): cron runs backup.sh; httpd serves the last success time.
set -eu
{pgpass}mkdir -p {_q(settings.metrics_dir)}
[ -f {_q(metrics)} ] || echo "# no backup run has succeeded yet" >{_q(metrics)}
echo '{schedule} sh /usr/local/bin/backup.sh >/proc/1/fd/1 2>/proc/1/fd/2' >/etc/crontabs/root
{" ".join(map(_q, metrics_server_command(settings)))} &
exec crond -f -l 8
"""


def metrics_server_command(settings: BackupSettings) -> list[str]:
    """busybox httpd in the foreground, serving the metric file (and nothing else is in that dir)."""
    return ["httpd", "-f", "-p", str(METRICS_PORT), "-h", settings.metrics_dir]
