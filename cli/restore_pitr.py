"""`ceres restore-pitr --stack prod --to MOMENT [--member NAME]`: the whole Patroni cluster back to a
moment, from the pgBackRest repository (point-in-time recovery).

The stack file alone (validated by `stacks.load.load_spec`, no engine run) names the hosts: the
first `ha.postgres_members` HA hosts carry the members (`ceres-<stack>-patroni-<host>`), the first
`ha.etcd_members` the etcd members (`ceres-<stack>-etcd-<host>`), the apps host the apps. Each
`docker` call gets DOCKER_HOST set to the host's URL.

Order: check the moment on a running member (pitr agent's `check-target`) before changing anything;
stop the apps (the stack's containers without io.ceres.restore=keep-running on the apps host) and
every member; delete Patroni's keys under /service/<scope>/ in etcd; a `restore-to` request into
one member's data volume, start it and wait until it answers as the primary; then each other member
with a `reinitialise` request (it clones from the new leader) until it streams; the apps start
again, also when a step failed (or the command is hung up on). Before the members stop, the leader
seals the archive: a commit after the moment, then `pgbackrest check` (switches WAL and waits until
it is archived), as recovery to a time ends only at the first commit after it. The new leader's
agent takes a full backup on the new timeline by itself. The member's side is its entry script
(`components/config/pitr_restore.py`).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from components.config.pgbackrest import AGENT_PATH, CONFIG_PATH, PgBackRestSettings, check
from components.config.postgres import STOP_GRACE_SECONDS
from components.config.pitr_restore import RECOVERY_TIMEOUT_SECONDS, REINITIALISE_REQUEST, REQUESTS_DIR, RESTORE_REQUEST
from components.config.backup import KEEP_RUNNING, RESTORE_LABEL

ETCDCTL = "/usr/local/bin/etcdctl"
# The member's own limit on the restore plus WAL replay, and a margin: the command never stops a
# member that is still replaying. One clone; the archive's seal.
LEADER_TIMEOUT = RECOVERY_TIMEOUT_SECONDS + 1800
REPLICA_TIMEOUT = 3600
SEAL_TIMEOUT = 600
POLL_SECONDS = 5.0
IS_PRIMARY = "select pg_is_in_recovery()"
IS_STREAMING_REPLICA = ("select pg_is_in_recovery() and exists"
                        " (select 1 from pg_stat_wal_receiver where status = 'streaming')")


class RestoreError(Exception):
    """A step failed; the message says which and what state it left."""


@dataclass(frozen=True)
class Container:
    host: str
    docker_host: str
    name: str


@dataclass(frozen=True)
class Layout:
    stack: str
    scope: str
    apps_docker_host: str
    members: tuple[Container, ...]
    etcd: tuple[Container, ...]

    def member(self, host: str) -> Container:
        for member in self.members:
            if member.host == host:
                return member
        raise RestoreError(f"--member {host}: not a Patroni member of stack {self.stack}"
                           f" (members: {', '.join(m.host for m in self.members)})")


def layout_from_stack(stack: str, project: Path | None) -> Layout:
    from cli.offline import project_dir, stack_file_config
    from stacks.load import load_spec

    config, secret_keys = stack_file_config(stack, project or project_dir())
    spec = load_spec(stack, config, set(secret_keys))
    ha_hosts = spec.hosts_with("ha")
    if not spec.ha.enabled or not spec.enabled("postgres") or not ha_hosts:
        raise RestoreError(f"stack {stack} runs no Patroni cluster (ceres:ha disabled or no HA hosts): "
                           "use `ceres restore` for its logical backups")
    prefix = f"ceres-{stack}"
    return Layout(
        stack=stack, scope=prefix, apps_docker_host=spec.host_for("apps").url,
        members=tuple(Container(h.name, h.url, f"{prefix}-patroni-{h.name}") for h in ha_hosts[: spec.ha.postgres_members]),
        etcd=tuple(Container(h.name, h.url, f"{prefix}-etcd-{h.name}") for h in ha_hosts[: spec.ha.etcd_members]),
    )


def say(message: str) -> None:
    print(f"restore-pitr: {message}", file=sys.stderr, flush=True)


class Docker:
    """`docker` against one host at a time (DOCKER_HOST per call)."""

    def run(self, docker_host: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": docker_host}
        try:
            return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(["docker", *args], 124, "", f"docker {args[0]} timed out after {timeout:.0f}s")
        except FileNotFoundError:
            raise RestoreError("docker is not on PATH: install the Docker CLI where you run this") from None

    def ok(self, container: Container | str, *args: str, timeout: float = 300) -> str:
        docker_host = container.docker_host if isinstance(container, Container) else container
        result = self.run(docker_host, *args, timeout=timeout)
        if result.returncode != 0:
            raise RestoreError(f"`docker {' '.join(args)}` on {docker_host} failed ({result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()}")
        return result.stdout

    def state(self, member: Container) -> tuple[bool, int]:
        """(running, restart count); (False, -1) when docker cannot inspect it."""
        result = self.run(member.docker_host, "inspect", "--format", "{{.State.Running}} {{.RestartCount}}", member.name)
        parts = result.stdout.split()
        if result.returncode != 0 or len(parts) != 2:
            return False, -1
        return parts[0] == "true", int(parts[1])

    def psql(self, member: Container, sql: str) -> str | None:
        result = self.run(member.docker_host, "exec", "-u", "postgres", member.name, "psql", "-XtAc", sql, timeout=60)
        return result.stdout.strip() if result.returncode == 0 else None

    def logs(self, member: Container) -> str:
        result = self.run(member.docker_host, "logs", "--tail", "30", member.name)
        return (result.stdout + result.stderr).strip()


@dataclass
class Options:
    target: datetime
    member: str | None
    stanza: str
    leader_timeout: float = LEADER_TIMEOUT
    replica_timeout: float = REPLICA_TIMEOUT
    poll_seconds: float = POLL_SECONDS


class Restore:
    def __init__(self, layout: Layout, options: Options, docker: Docker | None = None):
        self.layout, self.options, self.docker = layout, options, docker or Docker()
        self.done: list[str] = []

    def step(self, message: str) -> None:
        say(message)
        self.done.append(message)

    # --- before anything changes -------------------------------------------------------------------

    def pick(self) -> tuple[Container, Container]:
        """(the member that checks the target, the member that restores)."""
        running = [m for m in self.layout.members if self.docker.state(m)[0]]
        if not running:
            raise RestoreError("no Patroni member is running, so the target cannot be checked against the repository: "
                               f"start one ({', '.join(m.name for m in self.layout.members)}) and run this again")
        leader = next((m for m in running if self.docker.psql(m, IS_PRIMARY) == "f"), None)
        checker = leader or running[0]
        chosen = self.layout.member(self.options.member) if self.options.member else checker
        return checker, chosen

    def check_target(self, checker: Container) -> None:
        target = self.options.target.isoformat()
        result = self.docker.run(checker.docker_host, "exec", "-u", "postgres", checker.name, "python3", AGENT_PATH,
                                 "check-target", "--pgbackrest-config", CONFIG_PATH,
                                 "--stanza", self.options.stanza, "--target", target, timeout=300)
        detail = (result.stderr.strip() or result.stdout.strip()) or f"exit {result.returncode}"
        if result.returncode != 0:
            raise RestoreError(f"cannot restore to {target}: {detail}")
        self.step(f"target {target} checked on {checker.name}: {result.stdout.strip() or 'a backup reaches it'}")

    # --- the restore ----------------------------------------------------------------------------------

    def apps(self) -> list[str]:
        listing = self.docker.ok(self.layout.apps_docker_host, "ps", "--filter", f"label=io.ceres.stack={self.layout.stack}",
                                 "--format", '{{.Names}}\t{{.Label "' + RESTORE_LABEL + '"}}')
        rows = [line.split("\t") for line in listing.splitlines() if line.strip()]
        return [row[0] for row in rows if (row[1] if len(row) > 1 else "") != KEEP_RUNNING]

    def stop_members(self, checker: Container) -> None:
        # Replicas first, the leader (the checker, if it leads) last: no failover in between.
        order = [m for m in self.layout.members if m != checker] + [checker]
        for member in order:
            if self.docker.state(member)[0]:
                # Requests a failed earlier attempt left behind go while the member still runs.
                self.docker.run(member.docker_host, "exec", member.name, "rm", "-f",
                                f"{REQUESTS_DIR}/{RESTORE_REQUEST}", f"{REQUESTS_DIR}/{REINITIALISE_REQUEST}")
            self.docker.ok(member, "stop", "-t", str(STOP_GRACE_SECONDS), member.name, timeout=STOP_GRACE_SECONDS + 60)
        self.step(f"stopped the Patroni members: {', '.join(m.name for m in order)}")

    def clear_etcd(self) -> None:
        prefix = f"/service/{self.layout.scope}/"
        errors = []
        for etcd in self.layout.etcd:
            result = self.docker.run(etcd.docker_host, "exec", etcd.name, ETCDCTL, "del", "--prefix", prefix)
            if result.returncode == 0:
                self.step(f"deleted Patroni's keys under {prefix} in etcd ({etcd.name}): {result.stdout.strip() or '0'} keys")
                return
            errors.append(f"{etcd.name}: {(result.stderr or result.stdout).strip()}")
        raise RestoreError(f"could not delete {prefix} in etcd: {'; '.join(errors)}")

    def request(self, member: Container, name: str, text: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_text(text)
            # docker cp keeps the mode and makes root the owner: the entry script (user postgres) must read it.
            path.chmod(0o644)
            result = self.docker.run(member.docker_host, "cp", str(path), f"{member.name}:{REQUESTS_DIR}/{name}")
        if result.returncode != 0:
            raise RestoreError(f"could not put the {name} request into {member.name} ({result.stderr.strip()}): "
                               f"has it run CERES' entry script (which makes {REQUESTS_DIR}) since `pulumi up`?")

    def start_and_wait(self, member: Container, ready: Callable[[], bool], timeout: float, what: str) -> None:
        _, restarts = self.docker.state(member)
        self.docker.ok(member, "start", member.name)
        deadline = time.monotonic() + timeout
        while True:
            if ready():
                return
            running, now = self.docker.state(member)
            if not running or now > restarts:
                self._give_up(member, f"{member.name} exited before it was {what}")
            if time.monotonic() >= deadline:
                self._give_up(member, f"{member.name} was not {what} within {timeout:.0f}s")
            time.sleep(self.options.poll_seconds)

    def _give_up(self, member: Container, why: str) -> None:
        logs = self.docker.logs(member)
        # Stopped, so a failed request is not retried in a restart loop; the request stays for a retry.
        self.docker.run(member.docker_host, "stop", "-t", str(STOP_GRACE_SECONDS), member.name, timeout=STOP_GRACE_SECONDS + 60)
        raise RestoreError(f"{why}; stopped it. Its last log lines:\n{logs}")

    def restore_leader(self, chosen: Container) -> None:
        target = self.options.target.isoformat()
        self.request(chosen, RESTORE_REQUEST, target + "\n")
        say(f"restoring {chosen.name} to {target} (waiting up to {self.options.leader_timeout:.0f}s)")
        self.start_and_wait(chosen, lambda: self.docker.psql(chosen, IS_PRIMARY) == "f",
                            self.options.leader_timeout, "the primary")
        self.step(f"{chosen.name} restored to {target} and leads the cluster")

    def clone_replicas(self, chosen: Container) -> None:
        for member in [m for m in self.layout.members if m != chosen]:
            # An empty restore-to cancels one a failed attempt may have left in the stopped container.
            self.request(member, RESTORE_REQUEST, "")
            self.request(member, REINITIALISE_REQUEST, "")
            say(f"re-cloning {member.name} from {chosen.name} (waiting up to {self.options.replica_timeout:.0f}s)")
            self.start_and_wait(member, lambda m=member: self.docker.psql(m, IS_STREAMING_REPLICA) == "t",
                                self.options.replica_timeout, "a streaming replica")
            self.step(f"{member.name} cloned from {chosen.name} and streaming")

    def seal_archive(self, checker: Container) -> None:
        """With the apps stopped: a commit after the moment, and every WAL segment up to it archived.
        Without a leader nothing can be sealed: the restore can then reach only what was archived."""
        if self.docker.psql(checker, IS_PRIMARY) != "f":
            say(f"no member leads, so the newest WAL cannot be sealed into the archive: a moment after the last"
                f" archived commit cannot be reached")
            return
        argv = check(PgBackRestSettings(stanza=self.options.stanza))
        result = self.docker.run(checker.docker_host, "exec", "-u", "postgres", checker.name, "sh", "-c",
                                 'psql -XtAqc "select txid_current()" >/dev/null && exec "$@"', "seal", *argv,
                                 timeout=SEAL_TIMEOUT)
        if result.returncode != 0:
            raise RestoreError(f"could not seal the archive on {checker.name} (is WAL archiving failing?): "
                               f"{(result.stderr or result.stdout).strip()}; the members were not stopped")
        self.step(f"archive sealed on {checker.name}: WAL up to now is in the repository")

    def run_after_check(self, checker: Container, chosen: Container) -> None:
        """Everything after the checks: from here on, the apps start again whatever happens."""
        apps = self.apps()
        try:
            if apps:
                self.docker.ok(self.layout.apps_docker_host, "stop", *apps, timeout=600)
                self.step(f"stopped {len(apps)} app containers: {' '.join(apps)}")
            self.seal_archive(checker)
            self.stop_members(checker)
            self.clear_etcd()
            self.restore_leader(chosen)
            self.clone_replicas(chosen)
            self.step(f"{chosen.name}'s agent takes a full backup on the new timeline within a minute")
        except RestoreError as error:
            if any(line.startswith("stopped the Patroni members") for line in self.done):
                raise RestoreError(f"{error}\n{_WAYS_ON.format(chosen=chosen.name)}") from None
            raise
        finally:
            if apps:
                result = self.docker.run(self.layout.apps_docker_host, "start", *apps, timeout=600)
                if result.returncode == 0:
                    self.step(f"started {len(apps)} app containers again")
                else:
                    say(f"could not start the apps again ({result.stderr.strip()}): docker start {' '.join(apps)}")


# After the members stopped, a failure leaves them stopped and etcd cleared: what can be done then.
_WAYS_ON = """The members are stopped and Patroni's keys are gone from etcd; {chosen}'s data dir was
overwritten and it keeps its failed request. To get the cluster back as it was before:
- start a member that was not restored (DOCKER_HOST=<its host> docker start <its container>):
  with etcd empty, Patroni takes its data over as the new leader;
- then make {chosen} clone from it: copy an empty file to {requests}/restore-to and another to
  {requests}/reinitialise in it (docker cp), and docker start it.
Then run this command again, with an earlier moment if the archive did not reach this one.""".replace("{requests}", REQUESTS_DIR)


class HungUp(Exception):
    """SIGHUP or SIGTERM while the command runs: unwind so the apps start again."""


def _hang_up(signum, frame) -> None:
    raise HungUp(signal.Signals(signum).name)


def parse_target(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 moment, e.g. '2026-11-26 10:00:00+00:00'") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset: add one, e.g. '{text}+00:00'")
    return moment


def add_parser(commands) -> None:
    parser = commands.add_parser("restore-pitr", help="bring the prod PostgreSQL cluster back to a moment (pgBackRest)")
    parser.add_argument("--stack", required=True, help="a stack with the HA tier, e.g. prod")
    parser.add_argument("--to", required=True, type=parse_target, metavar="MOMENT",
                        help="ISO-8601 with an offset, e.g. '2026-11-26 10:00:00+00:00'; commits at that moment are kept")
    parser.add_argument("--member", default=None, metavar="HOST",
                        help="the host whose member restores and leads (default: the current leader)")
    parser.add_argument("--stanza", default=None, help="pgBackRest stanza (default: ceres-<stack>)")
    parser.add_argument("--project", type=Path, default=None, help="project folder holding the stack files (default: here, else CERES's own)")
    parser.add_argument("--leader-timeout", type=float, default=LEADER_TIMEOUT, metavar="SECONDS",
                        help=f"how long the restore and WAL replay may take (default: {LEADER_TIMEOUT})")
    parser.add_argument("--replica-timeout", type=float, default=REPLICA_TIMEOUT, metavar="SECONDS",
                        help=f"how long each member's clone may take (default: {REPLICA_TIMEOUT})")


def run(args: argparse.Namespace) -> int:
    from cli.offline import StackFileError
    from stacks.load import ConfigError

    try:
        layout = layout_from_stack(args.stack, args.project)
    except (StackFileError, RestoreError) as error:
        say(str(error))
        return 2
    except ConfigError as error:
        say(f"invalid config for stack {args.stack} (Pulumi.{args.stack}.yaml):\n{error}")
        return 2
    options = Options(target=args.to, member=args.member, stanza=args.stanza or layout.scope,
                      leader_timeout=args.leader_timeout, replica_timeout=args.replica_timeout)
    restore = Restore(layout, options)
    try:
        checker, chosen = restore.pick()
        restore.check_target(checker)
    except RestoreError as error:
        say(f"{error}\nnothing was stopped or changed")
        return 2
    # A lost SSH session must not leave the apps stopped: unwind through run_after_check's finally.
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _hang_up)
    try:
        restore.run_after_check(checker, chosen)
    except (RestoreError, HungUp) as error:
        say(f"FAILED: {error}")
        _summary(restore)
        return 1
    _summary(restore)
    return 0


def _summary(restore: Restore) -> None:
    print("\n".join(f"- {line}" for line in restore.done) if restore.done else "nothing was done")
