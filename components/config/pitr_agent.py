"""The point-in-time-recovery agent that runs next to PostgreSQL in EVERY Patroni member: whichever
member leads takes the scheduled pgBackRest backups; every member exports metrics about the
repository. Standalone (Python stdlib only): it is copied into the container and run as a file, so
it must not import `components.*`; tests import it.

    python3 pitr_agent.py run --pgbackrest-config PATH --stanza S --listen HOST:PORT \\
        --full-every-hours F --diff-every-hours D --interval-seconds N --socket-dir DIR --port PGPORT

Runs as the data dir's owner (`postgres`), with the repository passphrase and S3 keys in its
environment (PGBACKREST_REPO1_CIPHER_PASS, PGBACKREST_REPO1_S3_KEY, PGBACKREST_REPO1_S3_KEY_SECRET),
and `pgbackrest` and `psql` on PATH. Every N seconds (the first at once): is the local server the
leader (`select pg_is_in_recovery()` over the socket answers `f`; any error: not leader)? On
becoming leader, `stanza-create` (idempotent). Read the repository (`info`). If leader and a backup
is due (`due_backup`: the schedule comes from the repository itself, so a failover never doubles a
backup and a member that was down catches up), run it. Errors never stop it: one line on stderr.
Prometheus metrics (text format 0.0.4) at http://HOST:PORT/metrics.

    python3 pitr_agent.py check-target --pgbackrest-config PATH --stanza S --target ISO-8601-WITH-OFFSET

Before a point-in-time restore stops anything: exit 0 printing the backup pgBackRest would restore
from (the newest that stopped before the target, as `pgbackrest restore --type=time` chooses it);
exit 2 with the reason and the restorable range when the target is before the oldest backup or in
the future; exit 1 when the repository cannot be read.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable, Sequence

HOUR = 3600.0
# pgBackRest's info statuses that still mean "the repository answers": 0 ok, 2 no valid backups (a
# fresh stanza; the backup count says so). 1 is "missing stanza path", 99 "other" (a wrong
# passphrase: pgBackRest then still exits 0 and says so only here).
READABLE_STATUS = (0, 2)
# A failed backup is retried after this long (or diff_every if shorter), not every loop: each
# attempt forces a checkpoint and may wait for the archive.
RETRY_AFTER = 15 * 60.0
COMMAND_TIMEOUT = 300  # seconds, for everything but the backup itself (bounded by pgBackRest's own timeouts)
PSQL_TIMEOUT = 15
EXIT_UNREADABLE = 1
EXIT_NOT_RESTORABLE = 2


def log(message: str) -> None:
    print(f"ceres-pitr-agent: {message}", file=sys.stderr, flush=True)


def one_line(text: str, limit: int = 300) -> str:
    """Printable, single-line, bounded: pgBackRest quotes the garbage it decrypted with a wrong passphrase."""
    cleaned = "".join(c if c.isprintable() and c != "\ufffd" else " " for c in text.replace("\n", " | "))
    return " ".join(cleaned.split())[:limit]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


# --- The repository ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Backup:
    label: str
    type: str  # full, diff or incr
    start: int  # epoch seconds, whole (as pgBackRest records them)
    stop: int
    # The timeline its WAL starts on (the first 8 hex digits of the start segment's name).
    timeline: int | None = None


@dataclass(frozen=True)
class Repository:
    """One stanza as `pgbackrest info` reports it. `readable` False: nothing else is known."""

    readable: bool
    status: str
    backups: tuple[Backup, ...] = ()


def parse_info(text: str, stanza: str) -> Repository:
    """`pgbackrest --output=json info` for `stanza`: its status and its backups, oldest first."""
    try:
        # strict=False: with a wrong passphrase pgBackRest 2.45 puts raw control characters (the
        # garbage it decrypted) inside a JSON string.
        stanzas = json.loads(text, strict=False)
    except ValueError:
        return Repository(False, "pgbackrest info did not print JSON")
    entry = next((s for s in stanzas if s.get("name") == stanza), None) if isinstance(stanzas, list) else None
    if entry is None:
        return Repository(False, f"stanza {stanza} is not in pgbackrest info")
    status = entry.get("status", {})
    code, message = status.get("code"), str(status.get("message", ""))
    if code not in READABLE_STATUS:
        # The stanza's message can be just "other"; each repository's says what went wrong. Its first
        # line only: the next quote what a wrong passphrase decrypted.
        causes = [str(r["status"]["message"]) for r in entry.get("repo", []) if r.get("status", {}).get("code") not in (0, None)]
        reason = one_line((causes or [message])[0].split("\n", 1)[0])
        return Repository(False, f"status {code}: {reason}{_hint(reason)}")
    backups = tuple(sorted((Backup(b["label"], b["type"], int(b["timestamp"]["start"]), int(b["timestamp"]["stop"]),
                                   _timeline(b.get("archive", {}).get("start")))
                            for b in entry.get("backup", [])), key=lambda b: (b.stop, b.label)))
    return Repository(True, message, backups)


def _timeline(segment: object) -> int | None:
    try:
        return int(str(segment)[:8], 16)
    except ValueError:
        return None


def _hint(message: str) -> str:
    if "unable to load info file" in message:
        return " (is PGBACKREST_REPO1_CIPHER_PASS the repository's passphrase?)"
    if "missing stanza path" in message:
        return " (the leader's stanza-create makes it)"
    return ""


def _error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line]
    return one_line((errors or lines or [f"exit {result.returncode}"])[-1])


class PgBackRest:
    def __init__(self, config: str, stanza: str) -> None:
        self.config, self.stanza = config, stanza

    def _run(self, *args: str, timeout: float | None = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        argv = ["pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", *args]
        # errors="replace": with a wrong passphrase pgBackRest's message quotes binary garbage.
        return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout)

    def info(self) -> Repository:
        try:
            result = self._run("--output=json", "info")
        except (OSError, subprocess.TimeoutExpired) as error:
            return Repository(False, f"pgbackrest info: {one_line(str(error))}")
        if result.returncode != 0:
            return Repository(False, f"pgbackrest info failed: {_error(result)}")
        return parse_info(result.stdout, self.stanza)

    def command(self, *args: str, timeout: float | None = COMMAND_TIMEOUT) -> str | None:
        """Runs one pgBackRest command: None when it succeeded, else why it failed (one line)."""
        try:
            result = self._run(*args, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as error:
            return one_line(str(error))
        return None if result.returncode == 0 else f"exit {result.returncode}: {_error(result)}"


# --- The schedule ------------------------------------------------------------------------------


def due_backup(backups: Sequence[Backup], now: float, full_every: float, diff_every: float,
               timeline: int | None = None) -> str | None:
    """"full", "diff" or None, from the repository's own backups (epoch seconds, periods in seconds).
    `timeline`: the server's; after a point-in-time restore it is new, and a full backup on it is
    due at once (a later restore past the branch point needs a backup taken after it)."""
    fulls = [b for b in backups if b.type == "full"]
    if not fulls or now - max(b.stop for b in fulls) >= full_every:
        return "full"
    newest_full = max(fulls, key=lambda b: b.stop)
    if timeline is not None and newest_full.timeline is not None and newest_full.timeline != timeline:
        return "full"
    if now - max(b.stop for b in backups) >= diff_every:
        return "diff"
    return None


# --- The local server --------------------------------------------------------------------------


def _psql(socket_dir: str, port: int, sql: str) -> str | None:
    """The one-value answer of `sql` as the superuser over the socket (peer); None on any error."""
    argv = ["psql", "-XtAq", "-v", "ON_ERROR_STOP=1", "-h", socket_dir, "-p", str(port), "-d", "postgres", "-c", sql]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=PSQL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def is_leader(socket_dir: str, port: int) -> bool:
    return _psql(socket_dir, port, "select pg_is_in_recovery()") == "f"


def current_timeline(socket_dir: str, port: int) -> int | None:
    """The primary's timeline, from the WAL segment it writes (pg_control's lags until a checkpoint)."""
    answer = _psql(socket_dir, port, "select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
    return int(answer) if answer and answer.isdigit() else None


@dataclass(frozen=True)
class Archiver:
    last_archived: float | None
    last_failed: float | None

    @property
    def failing(self) -> bool:
        return self.last_failed is not None and (self.last_archived is None or self.last_failed > self.last_archived)


def archiver(socket_dir: str, port: int) -> Archiver | None:
    answer = _psql(socket_dir, port, "select coalesce(extract(epoch from last_archived_time)::text, '') || '|' || "
                                     "coalesce(extract(epoch from last_failed_time)::text, '') from pg_stat_archiver")
    if answer is None or "|" not in answer:
        return None
    archived, failed = answer.split("|", 1)
    return Archiver(float(archived) if archived else None, float(failed) if failed else None)


# --- Metrics -----------------------------------------------------------------------------------


@dataclass
class State:
    """What the metrics show; replaced as a whole by each loop, read by the HTTP thread."""

    repository: Repository = field(default_factory=lambda: Repository(False, "not read yet"))
    leader: bool = False
    archiver: Archiver | None = None
    last_run_success: bool | None = None
    last_run_at: float | None = None


HELP = {
    "ceres_pitr_repository_up": "1 when pgbackrest info read the stanza and its status is ok (or no backup yet).",
    "ceres_pitr_last_backup_timestamp_seconds": "Stop time of the newest backup of each type in the repository.",
    "ceres_pitr_oldest_restore_point_timestamp_seconds": "Stop time of the oldest kept backup: the earliest moment a restore reaches.",
    "ceres_pitr_backups": "Backups kept in the repository.",
    "ceres_pitr_leader": "1 when this member's server is the primary (it takes the scheduled backups).",
    "ceres_pitr_backup_last_run_success": "1 when the last backup this member ran succeeded.",
    "ceres_pitr_backup_last_run_timestamp_seconds": "When the last backup this member ran ended.",
    "ceres_pitr_wal_archive_failing": "1 when the primary's last WAL archive attempt failed (pg_stat_archiver).",
    "ceres_pitr_wal_last_archived_timestamp_seconds": "When the primary last archived a WAL segment.",
}


def _samples(state: State) -> Iterable[tuple[str, dict[str, str], float]]:
    repository = state.repository
    yield "ceres_pitr_repository_up", {}, int(repository.readable)
    if repository.readable:
        newest: dict[str, int] = {}
        for backup in repository.backups:
            newest[backup.type] = max(newest.get(backup.type, 0), backup.stop)
        for kind, stop in sorted(newest.items()):
            yield "ceres_pitr_last_backup_timestamp_seconds", {"type": kind}, stop
        if repository.backups:
            yield "ceres_pitr_oldest_restore_point_timestamp_seconds", {}, min(b.stop for b in repository.backups)
        yield "ceres_pitr_backups", {}, len(repository.backups)
    yield "ceres_pitr_leader", {}, int(state.leader)
    if state.last_run_at is not None:
        yield "ceres_pitr_backup_last_run_success", {}, int(bool(state.last_run_success))
        yield "ceres_pitr_backup_last_run_timestamp_seconds", {}, state.last_run_at
    if state.leader and state.archiver is not None:
        yield "ceres_pitr_wal_archive_failing", {}, int(state.archiver.failing)
        if state.archiver.last_archived is not None:
            yield "ceres_pitr_wal_last_archived_timestamp_seconds", {}, state.archiver.last_archived


def _number(value: float) -> str:
    # Whole numbers as integers, others in full (`:g` would round a timestamp to 6 digits).
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_metrics(state: State) -> str:
    """Prometheus text format 0.0.4: HELP and TYPE (all gauges) once before each metric's samples."""
    lines: list[str] = []
    for name, labels, value in _samples(state):
        if f"# TYPE {name} gauge" not in lines:
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge"]
        label_text = ",".join(f'{key}="{value}"' for key, value in labels.items())
        lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def serve_metrics(host: str, port: int, current: "Agent") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = render_metrics(current.state).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


# --- The loop ----------------------------------------------------------------------------------


class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pgbackrest = PgBackRest(args.pgbackrest_config, args.stanza)
        self.state = State()
        self.leader: bool | None = None  # unknown until the first loop
        self.stanza_ready = False  # stanza-create succeeded since this member last became leader
        self.stanza_failure: str | None = None
        self.retry_at = 0.0

    def step(self) -> None:
        args, previous = self.args, self.state
        leader = is_leader(args.socket_dir, args.port)
        if leader != self.leader:
            self.leader = leader
            log("this member leads: it takes the scheduled backups" if leader else "this member does not lead: no backups here")
            self.stanza_ready = False
        if leader and not self.stanza_ready:
            failure = self.pgbackrest.command("stanza-create")
            self.stanza_ready = failure is None
            if failure and failure != self.stanza_failure:  # retried every loop, said once
                log(f"stanza-create failed, retrying every loop: {failure}{_hint(failure)}")
            self.stanza_failure = failure
        repository = self.pgbackrest.info()
        run_success, run_at = previous.last_run_success, previous.last_run_at
        kind = due_backup(repository.backups, time.time(), args.full_every_hours * HOUR, args.diff_every_hours * HOUR,
                          current_timeline(args.socket_dir, args.port) if leader else None)
        if leader and self.stanza_ready and repository.readable and kind and time.time() >= self.retry_at:
            run_success, run_at = self.backup(kind), time.time()
            repository = self.pgbackrest.info()
        if repository.status != previous.repository.status or repository.readable != previous.repository.readable:
            log(f"repository readable: {repository.status}" if repository.readable else f"repository NOT readable: {repository.status}")
        self.state = State(repository, leader, archiver(args.socket_dir, args.port) if leader else None, run_success, run_at)

    def backup(self, kind: str) -> bool:
        log(f"{kind} backup due: starting")
        started = time.monotonic()
        failure = self.pgbackrest.command(f"--type={kind}", "backup", timeout=None)
        if failure:
            self.retry_at = time.time() + min(RETRY_AFTER, self.args.diff_every_hours * HOUR)
            log(f"{kind} backup failed, retrying at {iso(self.retry_at)}: {failure}")
            return False
        log(f"{kind} backup done in {time.monotonic() - started:.0f} s")
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception as error:  # noqa: BLE001 - the agent must outlive any one bad loop
                log(f"loop failed, continuing: {type(error).__name__}: {one_line(str(error))}")
            stop.wait(self.args.interval_seconds)


# --- check-target ------------------------------------------------------------------------------


def check_target(repository: Repository, target: datetime, now: float) -> tuple[int, str]:
    """(exit code, message) for a restore to `target`: pgBackRest restores the newest backup whose
    stop time (whole seconds) is strictly before the target's second."""
    if not repository.readable:
        return EXIT_UNREADABLE, f"cannot read the repository: {repository.status}"
    moment = target.timestamp()
    if not repository.backups:
        return EXIT_NOT_RESTORABLE, "no backup in the repository: nothing to restore from"
    earliest = iso(min(b.stop for b in repository.backups) + 1)
    span = f"restorable from {earliest} to now ({iso(now)}, less the WAL not archived yet)"
    if moment > now:
        return EXIT_NOT_RESTORABLE, f"target {target.isoformat()} is in the future: {span}"
    candidates = [b for b in repository.backups if b.stop < int(moment)]
    if not candidates:
        return EXIT_NOT_RESTORABLE, f"target {target.isoformat()} is before the oldest backup's end: {span}"
    chosen = max(candidates, key=lambda b: (b.stop, b.label))
    return 0, f"restorable: {target.isoformat()} from {chosen.type} backup {chosen.label} (ended {iso(chosen.stop)}), then WAL replay"


def _target(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not ISO-8601, e.g. 2026-01-31T14:05:00+01:00") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset (e.g. +00:00): a naive time is ambiguous")
    return moment


# --- Command line ------------------------------------------------------------------------------


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: give HOST:PORT, e.g. 0.0.0.0:9854")
    return host.strip("[]"), int(port)


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be more than 0")
    return value


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="pitr_agent.py", description=__doc__.split("\n\n")[0])
    commands = cli.add_subparsers(dest="command", required=True)
    for name in ("run", "check-target"):
        sub = commands.add_parser(name)
        sub.add_argument("--pgbackrest-config", required=True)
        sub.add_argument("--stanza", required=True)
    run = commands.choices["run"]
    run.add_argument("--listen", type=_listen, required=True)
    run.add_argument("--full-every-hours", type=_positive, required=True)
    run.add_argument("--diff-every-hours", type=_positive, required=True)
    run.add_argument("--interval-seconds", type=_positive, required=True)
    run.add_argument("--socket-dir", required=True)
    run.add_argument("--port", type=int, required=True)
    commands.choices["check-target"].add_argument("--target", type=_target, required=True)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "check-target":
        code, message = check_target(PgBackRest(args.pgbackrest_config, args.stanza).info(), args.target, time.time())
        print(message, file=sys.stdout if code == 0 else sys.stderr)
        return code
    agent = Agent(args)
    server = serve_metrics(*args.listen, agent)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log(f"serving metrics on {args.listen[0]}:{args.listen[1]}/metrics; stanza {args.stanza}, full every "
        f"{args.full_every_hours:g} h, diff every {args.diff_every_hours:g} h, checked every {args.interval_seconds:g} s")
    agent.run(stop)
    server.shutdown()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
