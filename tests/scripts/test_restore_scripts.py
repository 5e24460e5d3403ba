"""scripts/restore-full.sh and scripts/restore-drill.sh (and `ceres restore`) against a stub `docker`
that plays a deployed stack: what they stop, run and start again, and how they refuse.

No Docker engine runs here; the scripts inside the backup container run for real in
tests/components/config/test_backup_real.py. The stub records every call and answers `inspect`
and `ps` from files the test writes; `exec` of the backup's restore exits with $STUB_RESTORE_RC.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]
STUB = r"""#!/bin/sh
echo "$*" >>"$STUB_DIR/calls"
case "$1" in
  inspect)
    name=$(eval echo \${$#})
    case "$3" in
      *Running*) cat "$STUB_DIR/running-$name" 2>/dev/null || exit 1 ;;
      *postgres-image*) cat "$STUB_DIR/image-$name" 2>/dev/null || exit 1 ;;
    esac ;;
  ps) cat "$STUB_DIR/ps" ;;
  exec)
    case "$*" in
      *restore-full.sh*|*restore-drill.sh*) echo "restored"; exit "${STUB_RESTORE_RC:-0}" ;;
    esac ;;
esac
exit 0
"""


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(STUB)
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "running-ceres-dev-backup").write_text("true\n")
    (tmp_path / "image-ceres-dev-backup").write_text("postgres:17.6-bookworm\n")
    running(tmp_path, "dev", kept=("postgres", "backup"), stopped=("gitea", "nextcloud", "caddy"))
    return tmp_path


def running(stub: Path, stack: str, *, kept, stopped) -> None:
    """What `docker ps` lists: each container's name and its io.ceres.restore label."""
    rows = [f"ceres-{stack}-{name}\tkeep-running\n" for name in kept] + [f"ceres-{stack}-{name}\t\n" for name in stopped]
    (stub / "ps").write_text("".join(rows))


def run(stack: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PATH": f"{stack / 'bin'}:{os.environ['PATH']}", "STUB_DIR": str(stack), **env}
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          env=environment, timeout=30)


def calls(stack: Path) -> list[str]:
    path = stack / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_restore_stops_the_apps_restores_in_the_backup_container_and_starts_them_again(stack):
    result = run(stack, "restore-full.sh", "--stack", "dev", "20261126T030000Z")
    assert result.returncode == 0, result.stderr
    made = calls(stack)
    stop = next(c for c in made if c.startswith("stop"))
    assert stop.split()[1:] == ["ceres-dev-gitea", "ceres-dev-nextcloud", "ceres-dev-caddy"]
    restore = made.index("exec ceres-dev-backup sh /usr/local/bin/restore-full.sh 20261126T030000Z")
    start = next(i for i, c in enumerate(made) if c.startswith("start"))
    assert made.index(stop) < restore < start
    assert made[start].split()[1:] == ["ceres-dev-gitea", "ceres-dev-nextcloud", "ceres-dev-caddy"]
    assert "restored" in result.stdout


def test_a_failed_restore_still_starts_the_apps_and_fails(stack):
    result = run(stack, "restore-full.sh", STUB_RESTORE_RC="3")
    assert result.returncode == 3
    assert any(c.startswith("start ceres-dev-gitea") for c in calls(stack))


def test_without_a_running_backup_container_nothing_is_stopped(stack):
    (stack / "running-ceres-dev-backup").unlink()
    result = run(stack, "restore-full.sh")
    assert result.returncode == 2
    assert "ceres-dev-backup is not running" in result.stderr and "pulumi up" in result.stderr
    assert not [c for c in calls(stack) if c.startswith(("stop", "exec", "start"))]


def test_the_drill_uses_a_throwaway_server_of_the_stacks_image_and_always_removes_it(stack):
    result = run(stack, "restore-drill.sh", STUB_RESTORE_RC="1")
    assert result.returncode == 1
    made = calls(stack)
    started = next(c for c in made if c.startswith("run "))
    assert "--network ceres-dev-data" in started and started.endswith("postgres:17.6-bookworm")
    # The password travels by name only: it is in no command line.
    assert "-e POSTGRES_PASSWORD " in started
    drill = next(c for c in made if "restore-drill.sh" in c)
    assert "CERES_DRILL_PGHOST=ceres-dev-restore-drill" in drill and drill.endswith("ceres-dev-backup sh /usr/local/bin/restore-drill.sh latest")
    assert made[-1] == "rm -f ceres-dev-restore-drill"
    assert not [c for c in made if c.startswith("stop")], "a drill never stops the stack"


def test_ceres_restore_runs_the_same_script(stack, monkeypatch):
    monkeypatch.setenv("PATH", f"{stack / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("STUB_DIR", str(stack))
    assert main(["restore", "--stack", "dev", "latest"]) == 0
    assert "exec ceres-dev-backup sh /usr/local/bin/restore-full.sh latest" in calls(stack)


def test_on_prod_the_ha_members_on_the_apps_host_keep_running(stack):
    (stack / "running-ceres-prod-backup").write_text("true\n")
    running(stack, "prod", kept=("patroni-node1", "etcd-node1", "haproxy-node1", "keepalived-node1",
                                 "redis-node1-data", "redis-node1-sentinel", "backup"),
            stopped=("gitea", "nextcloud", "caddy"))
    result = run(stack, "restore-full.sh", "--stack", "prod")
    assert result.returncode == 0, result.stderr
    stop = next(c for c in calls(stack) if c.startswith("stop"))
    assert sorted(stop.split()[1:]) == ["ceres-prod-caddy", "ceres-prod-gitea", "ceres-prod-nextcloud"]


def test_the_drill_refuses_when_the_backup_does_not_name_the_postgresql_image(stack):
    (stack / "image-ceres-dev-backup").unlink()
    result = run(stack, "restore-drill.sh")
    assert result.returncode == 2 and "io.ceres.postgres-image" in result.stderr
    assert not [c for c in calls(stack) if c.startswith("run ")]
