"""Whole-cluster point-in-time restore, the member's side: the Patroni container's entry script.

`ceres restore-pitr` (cli/restore_pitr.py) stops every member, clears the cluster's keys in etcd and
drops a request file into a member's data volume; the entry script acts on it before it execs
Patroni:

- `<requests_dir>/restore-to` (one line: the moment, ISO-8601 with an offset): pgBackRest restores
  the data dir to that moment; a local PostgreSQL (socket in a private dir, no network) replays the
  WAL until it promotes; the recovery target settings pgBackRest wrote into postgresql.auto.conf
  are reset (a replica cloned later copies that file and would stop replaying at the old target);
  then Patroni starts on that data dir and, with no leader and no `initialize` key in etcd, takes
  it over as the new leader. A `reinitialise` request left next to it is dropped (the restore
  supersedes it).
- `<requests_dir>/reinitialise` (empty): the data dir is wiped, so Patroni clones it from the leader.
- An EMPTY `restore-to` is a cancelled request, removed without a restore: `docker cp` can
  overwrite a file in a stopped container but not remove one, so this is how the restore command
  cancels a failed attempt's request left on a member that is now to clone instead.

A request is removed once done and the outcome is written to `<requests_dir>/last-result`. A failed
request stays in place and the script exits non-zero without starting Patroni: nothing
half-restored ever serves. Progress and errors go to stderr (the container's log).

Pure renderer: `tests/components/config/test_pitr_restore_real.py` runs the script for real.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from components.config.pgbackrest import PgBackRestSettings, archive_command, restore_to

RESTORE_REQUEST = "restore-to"
REINITIALISE_REQUEST = "reinitialise"
LAST_RESULT = "last-result"
# Recovery settings pgBackRest writes into postgresql.auto.conf for a time target (and their
# siblings, should a later version write them). The targets must not outlive the restore: a replica
# cloned later copies that file and would stop replaying there. restore_command goes too, so
# Patroni's own (from patroni.yml) is the one in force, even after the repository's settings change.
RECOVERY_SETTINGS = (
    "restore_command", "recovery_target", "recovery_target_time", "recovery_target_xid", "recovery_target_lsn",
    "recovery_target_name", "recovery_target_inclusive", "recovery_target_timeline", "recovery_target_action",
)
# In the data volume (outside PGDATA, which a restore rewrites): `docker cp` reaches it even
# while the container is stopped.
REQUESTS_DIR = "/var/lib/postgresql/data/ceres-restore"
# Replaying the WAL up to the target: a day of busy WAL can take hours.
RECOVERY_TIMEOUT_SECONDS = 6 * 3600


@dataclass(frozen=True)
class MemberEntrySettings:
    """The member container's layout (the postgres:17 image) and what to run after the requests."""

    pgbackrest: PgBackRestSettings
    # Patroni's argv, exec'd last (e.g. ("/opt/patroni/bin/patroni", "/etc/patroni/patroni.yml")).
    patroni: tuple[str, ...]
    # A background process started just before Patroni (the pitr agent); empty: none.
    agent: tuple[str, ...] = ()
    data_dir: str = "/var/lib/postgresql/data/pgdata"
    bin_dir: str = "/usr/lib/postgresql/17/bin"
    requests_dir: str = REQUESTS_DIR
    recovery_timeout_seconds: int = RECOVERY_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.patroni:
            raise ValueError("patroni: give Patroni's argv (the script execs it last)")
        if self.data_dir != self.pgbackrest.data_dir:
            raise ValueError(f"data_dir {self.data_dir} must be the one pgBackRest restores ({self.pgbackrest.data_dir})")
        for name in ("data_dir", "bin_dir", "requests_dir"):
            value = getattr(self, name)
            if not value.startswith("/") or value.rstrip("/") in ("", "/var", "/var/lib", "/var/lib/postgresql"):
                raise ValueError(f"{name}={value!r}: give an absolute path below a folder of its own")
        if self.requests_dir.rstrip("/").startswith(self.data_dir.rstrip("/") + "/"):
            raise ValueError(f"requests_dir {self.requests_dir} must lie outside data_dir {self.data_dir}: a restore rewrites it")
        if self.recovery_timeout_seconds < 1:
            raise ValueError(f"recovery_timeout_seconds={self.recovery_timeout_seconds}: must be at least 1")


def _argv(argv: tuple[str, ...] | list[str]) -> str:
    return " ".join(shlex.quote(part) for part in argv)


def _restore_argv(settings: PgBackRestSettings) -> str:
    """pgBackRest's point-in-time restore to `$moment`, expanded at run time. Double quotes are
    enough for the other words: PgBackRestSettings admits no shell character in its paths or stanza."""
    return " ".join(f'"{part}"' for part in restore_to(settings, "$moment"))


def _reset_targets_sql() -> str:
    # One statement per line from stdin: psql sends each alone (ALTER SYSTEM refuses a transaction).
    return "\n".join(f"ALTER SYSTEM RESET {name};" for name in RECOVERY_SETTINGS)


def member_entry_script(settings: MemberEntrySettings) -> str:
    archive = settings.pgbackrest
    q = shlex.quote
    agent = f"{_argv(settings.agent)} &\n" if settings.agent else ""
    return f"""#!/bin/sh
# Rendered by CERES: the Patroni member's entry point. Acts on a restore request in the data volume
# ({RESTORE_REQUEST} or {REINITIALISE_REQUEST} in {settings.requests_dir}), then runs Patroni.
set -eu
data_dir={q(settings.data_dir)}
requests={q(settings.requests_dir)}
bin={q(settings.bin_dir)}
port={archive.port}
recovery_timeout={settings.recovery_timeout_seconds}
# The restore's own server listens only here: no client (nor the restore command's leader check,
# which asks the usual socket) reaches it before Patroni runs it.
private_socket="$requests/socket"

say() {{ printf 'ceres-restore: %s\\n' "$*" >&2; }}
# As the container's PID 1 the shell ignores SIGTERM unless it traps it: `docker stop` during a
# restore stops pgBackRest or the recovering server cleanly instead of killing them after the
# grace period. The request stays, so the next start restores again.
child=
trap 'say "stopped during the restore: the request stays for the next start"; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null; exit 143' TERM INT
in_background() {{ "$@" & child=$!; wait "$child"; }}
record() {{ printf '%s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >"$requests/{LAST_RESULT}.new" && mv "$requests/{LAST_RESULT}.new" "$requests/{LAST_RESULT}"; }}
fail() {{ say "FAILED: $*"; record "failed: $*"; exit 1; }}

local_psql() {{ "$bin/psql" -X -At -q -v ON_ERROR_STOP=1 -h "$private_socket" -p "$port" -d postgres "$@"; }}
local_sql() {{ local_psql -c "$1"; }}
local_sql_stdin() {{ local_psql -f -; }}

# pgBackRest takes the target in UTC; a moment without an offset would be read in the server's zone.
normalised_target() {{
  # A time of day, then an offset: a bare date's "-26" is not one.
  case "$1" in
    *[0-9][0-9]:[0-9][0-9]*) ;;
    *) return 1 ;;
  esac
  case "$1" in
    *Z|*[+-][0-9][0-9]|*[+-][0-9][0-9]:[0-9][0-9]|*[+-][0-9][0-9][0-9][0-9]) ;;
    *) return 1 ;;
  esac
  date -u -d "$1" '+%Y-%m-%d %H:%M:%S.%6N+00'
}}

finish_recovery() {{
  mkdir -p -m 700 "$private_socket"
  # The restored postgresql.conf is the one Patroni wrote on the member the backup was taken on:
  # this member's own socket, rules and archive command, and no synchronous standby to wait for.
  "$bin/postgres" -D "$data_dir" -c listen_addresses= -c port="$port" -c unix_socket_directories="$private_socket" \\
    -c hba_file="$data_dir/pg_hba.conf" -c ident_file="$data_dir/pg_ident.conf" \\
    -c archive_mode=on -c archive_command={q(archive_command(archive))} \\
    -c synchronous_standby_names= -c hot_standby=on &
  server=$!
  child=$server
  waited=0
  until [ "$(local_sql 'select pg_is_in_recovery()' 2>/dev/null)" = f ]; do
    if ! kill -0 "$server" 2>/dev/null; then
      wait "$server" || true
      fail "PostgreSQL stopped during recovery to $target (its log is above): is WAL up to that moment in the repository?"
    fi
    if [ "$waited" -ge "$recovery_timeout" ]; then
      kill -INT "$server"; wait "$server" || true
      fail "recovery to $target did not finish within ${{recovery_timeout}}s"
    fi
    sleep 1; waited=$((waited + 1))
  done
  printf '%s\\n' {q(_reset_targets_sql())} | local_sql_stdin || {{ kill -INT "$server"; wait "$server" || true; fail "could not reset the recovery settings in postgresql.auto.conf"; }}
  timeline=$(local_sql "select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int" 2>/dev/null || echo '?')
  kill -INT "$server"
  wait "$server" || fail "PostgreSQL did not shut down cleanly after the recovery"
  rmdir "$private_socket" 2>/dev/null || true
  if grep -Eq '^[[:space:]]*(recovery_target|restore_command)' "$data_dir/postgresql.auto.conf" 2>/dev/null; then
    fail "postgresql.auto.conf still sets a recovery setting"
  fi
}}

restore_to_moment() {{
  target=$(tr -d '\\r\\n' <"$requests/{RESTORE_REQUEST}")
  moment=$(normalised_target "$target") || fail "{RESTORE_REQUEST} holds '$target': give an ISO-8601 moment with an offset, e.g. 2026-11-26T10:00:00+00:00"
  say "restoring $data_dir to $target ($moment) from the pgBackRest repository"
  mkdir -p -m 700 "$data_dir"
  in_background {_restore_argv(archive)} || fail "pgbackrest restore to $target failed (its message is above)"
  say "replaying WAL up to $target with a local server (no network)"
  finish_recovery
  rm -f "$requests/{RESTORE_REQUEST}" "$requests/{REINITIALISE_REQUEST}"
  record "ok: restored to $target (timeline $timeline); Patroni starts on it"
  say "restored to $target (timeline $timeline): starting Patroni on it"
}}

wipe_for_clone() {{
  say "reinitialise: wiping $data_dir so Patroni clones it from the leader"
  rm -rf "$data_dir" || fail "could not wipe $data_dir"
  rm -f "$requests/{REINITIALISE_REQUEST}"
  record "ok: data dir wiped; Patroni clones it from the leader"
}}

mkdir -p "$requests"
if [ -s "$requests/{RESTORE_REQUEST}" ]; then
  restore_to_moment
elif [ -e "$requests/{RESTORE_REQUEST}" ]; then
  # Empty: a cancelled request (`docker cp` can overwrite a file in a stopped container, not remove it).
  rm -f "$requests/{RESTORE_REQUEST}"
  say "an empty {RESTORE_REQUEST} (a cancelled request) removed"
fi
if [ -e "$requests/{REINITIALISE_REQUEST}" ]; then
  wipe_for_clone
fi
{agent}exec {_argv(settings.patroni)}
"""
