"""The rendered alert rules, checked and unit-tested by the real promtool.

promtool is Debian bookworm's (`apt-get install -y prometheus`, 2.42); the pinned image is v3.5.
Every alert has a case where it fires, with its exact labels and expanded annotations (runbook
included), and one where it stays silent (a healthy series, a value in a neighbouring alert's
band, or a condition shorter than its `for`). promtool compares annotations after Prometheus
expands their templates; the expected text is expanded here from the rendered rule, with label
values taken only from the expected labels, so a template naming a label the series lacks fails.
Input series use the label names the exporters really emit (see components/config/alert_rules.py).
"""

from __future__ import annotations

import re
import subprocess
from fnmatch import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from components.config.alert_rules import (
    BACKUP_SUCCESS_METRIC,
    PITR_ARCHIVE_FAILING_METRIC,
    PITR_BACKUP_METRIC,
    PITR_REPOSITORY_METRIC,
    RULES_FILE,
    AlertRuleSettings,
    alert_groups,
    prometheus_rules,
)
from components.config.prometheus import PrometheusSettings, ScrapeJob, prometheus_yml
from tests.components.config.promql_check import promql_problems, promtool

TIMEOUT = 60
ALL_JOBS = frozenset({"prometheus", "cadvisor", "postgres_exporter", "redis_exporter", "uptime_kuma", "patroni",
                      "gitea", "keycloak", "loki", "pgbackrest"})
FULL = AlertRuleSettings(jobs=ALL_JOBS, ha=True, backup=True, point_in_time=True)

GITEA_UP = 'up{job="gitea", instance="gitea:3000"}'
CONTAINER = 'name="ceres-dev-gitea", image="gitea/gitea:1.24.6", id="/system.slice/docker-abc.scope", instance="cadvisor:8080", host="local", job="cadvisor"'
CONTAINER_LABELS = {"name": "ceres-dev-gitea", "image": "gitea/gitea:1.24.6", "id": "/system.slice/docker-abc.scope",
                    "instance": "cadvisor:8080", "host": "local", "job": "cadvisor"}
OTHER_CONTAINER = CONTAINER.replace("gitea", "keycloak").replace("docker-abc", "docker-def")
MACHINE = 'boot_id="b1", machine_id="m1", system_uuid="u1", instance="cadvisor:8080", host="local", job="cadvisor"'
# The same metrics from an HA host's cAdvisor, scraped at its address.
ON_HA_HOST = (CONTAINER.replace("ceres-dev-gitea", "ceres-prod-patroni-node2").replace("cadvisor:8080", "10.0.0.12:8080")
              .replace('host="local"', 'host="node2"'))
HA_MACHINE = (MACHINE.replace("b1", "b2").replace("m1", "m2").replace("u1", "u2").replace("cadvisor:8080", "10.0.0.12:8080")
              .replace('host="local"', 'host="node2"'))
ROOT_FS = 'id="/", device="/dev/sda1", instance="cadvisor:8080", host="local", job="cadvisor"'
ROOT_FS_LABELS = {"id": "/", "device": "/dev/sda1", "instance": "cadvisor:8080", "host": "local", "job": "cadvisor"}
PG = 'instance="postgres-exporter:9187", job="postgres_exporter"'
REDIS = 'instance="redis-exporter:9121", job="redis_exporter"'
KUMA = ('monitor_name="Gitea", monitor_type="http", monitor_url="https://git.example.com/", monitor_hostname="null", '
        'monitor_port="null", instance="uptime-kuma:3001", job="uptime_kuma"')
KUMA_LABELS = {"monitor_name": "Gitea", "monitor_type": "http", "monitor_url": "https://git.example.com/",
               "monitor_hostname": "null", "monitor_port": "null", "instance": "uptime-kuma:3001", "job": "uptime_kuma"}
MIB = 1024 * 1024
AGENT = 'instance="10.0.0.12:9188", job="pgbackrest"'
AGENT_LABELS = {"instance": "10.0.0.12:9188", "job": "pgbackrest"}


def agents(metric: str, values: str) -> list[dict]:
    """The same repository metric from two members' agents."""
    return [series(f'{metric}{{instance="10.0.0.{n}:9188", job="pgbackrest", type="diff"}}', values) for n in (11, 12)]


def patroni(leader_position: int, replica_replayed: int) -> list[dict]:
    """A two-member Patroni cluster as Patroni 4's /metrics shows it: pg1 leads, pg2 replicates."""
    def member(name: str) -> str:
        return f'scope="ceres", name="{name}", instance="{name}:8008", job="patroni"'
    return [
        {"series": f"patroni_xlog_location{{{member('pg1')}}}", "values": f"{leader_position}x10"},
        {"series": f"patroni_xlog_location{{{member('pg2')}}}", "values": "0x10"},
        {"series": f"patroni_xlog_replayed_location{{{member('pg1')}}}", "values": "0x10"},
        {"series": f"patroni_xlog_replayed_location{{{member('pg2')}}}", "values": f"{replica_replayed}x10"},
        {"series": f"patroni_primary{{{member('pg1')}}}", "values": "1x10"},
        {"series": f"patroni_primary{{{member('pg2')}}}", "values": "0x10"},
        {"series": f"patroni_replica{{{member('pg1')}}}", "values": "0x10"},
        {"series": f"patroni_replica{{{member('pg2')}}}", "values": "1x10"},
    ]


def series(name: str, values: str) -> dict:
    return {"series": name, "values": values}


@dataclass(frozen=True)
class Firing:
    """Input that makes the alert fire at `at` with these series labels; `value` is how Prometheus
    prints `{{ $value }}`, `shown` how it prints `{{ $value | function }}`."""

    input: list[dict]
    at: str
    labels: dict[str, str]
    value: str = ""
    shown: dict[str, str] = field(default_factory=dict)
    interval: str = "1m"


@dataclass(frozen=True)
class Silent:
    input: list[dict]
    at: str
    interval: str = "1m"


CASES: dict[str, tuple[Firing, Silent]] = {
    "InstanceDown": (
        Firing([series(GITEA_UP, "0x10")], "6m", {"job": "gitea", "instance": "gitea:3000"}),
        # Down for 4 of the 5 minutes `for` asks, then back.
        Silent([series(GITEA_UP, "1 0 0 0 0 1 1 1 1")], "8m"),
    ),
    "ContainerRestarting": (
        Firing([series(f"container_start_time_seconds{{{CONTAINER}}}", "100 160 220 280 340 340")], "5m",
               CONTAINER_LABELS, value="4"),
        # One restart (a deploy); the root cgroup (name="") never counts.
        Silent([series(f"container_start_time_seconds{{{CONTAINER}}}", "100 100 160 160 160 160"),
                series('container_start_time_seconds{name="", id="/", instance="cadvisor:8080", job="cadvisor"}',
                       "1 2 3 4 5 6")], "5m"),
    ),
    "ContainerOutOfMemory": (
        Firing([series(f"container_oom_events_total{{{CONTAINER}}}", "0 0 1 1 1")], "4m", CONTAINER_LABELS),
        Silent([series(f"container_oom_events_total{{{CONTAINER}}}", "0x10")], "10m"),
    ),
    "HostCpuHigh": (
        # 1 and 0.9 CPU-seconds a second on a 2-core host: 95%. Another host as busy in absolute
        # terms but with 8 cores (24%) stays quiet: each host against its own cores.
        Firing([series(f"container_cpu_usage_seconds_total{{{CONTAINER}}}", "0+60x30"),
                series(f'container_cpu_usage_seconds_total{{{OTHER_CONTAINER}}}', "0+54x30"),
                series(f"machine_cpu_cores{{{MACHINE}}}", "2x30"),
                series(f"container_cpu_usage_seconds_total{{{ON_HA_HOST}}}", "0+114x30"),
                series(f"machine_cpu_cores{{{HA_MACHINE}}}", "8x30")], "20m", {"instance": "cadvisor:8080", "host": "local"},
               shown={"humanizePercentage": "95%"}),
        # Half the CPUs; the root cgroup (name="", the whole host) is not summed on top.
        Silent([series(f"container_cpu_usage_seconds_total{{{CONTAINER}}}", "0+30x30"),
                series(f"container_cpu_usage_seconds_total{{{OTHER_CONTAINER}}}", "0+30x30"),
                series(f'container_cpu_usage_seconds_total{{name="", {ROOT_FS}}}', "0+120x30"),
                series(f"machine_cpu_cores{{{MACHINE}}}", "2x30")], "20m"),
    ),
    "HostMemoryHigh": (
        Firing([series(f"container_memory_working_set_bytes{{{CONTAINER}}}", f"{600 * MIB}x15"),
                series(f"container_memory_working_set_bytes{{{OTHER_CONTAINER}}}", f"{340 * MIB}x15"),
                series(f"machine_memory_bytes{{{MACHINE}}}", f"{1000 * MIB}x15"),
                series(f"container_memory_working_set_bytes{{{ON_HA_HOST}}}", f"{940 * MIB}x15"),
                series(f"machine_memory_bytes{{{HA_MACHINE}}}", f"{4000 * MIB}x15")], "11m", {"instance": "cadvisor:8080", "host": "local"},
               shown={"humanizePercentage": "94%"}),
        # 94% for 9 of the 10 minutes `for` asks, then 50%.
        Silent([series(f"container_memory_working_set_bytes{{{CONTAINER}}}", f"{940 * MIB}x8 {500 * MIB}x6"),
                series(f"machine_memory_bytes{{{MACHINE}}}", f"{1000 * MIB}x15")], "11m"),
    ),
    "HostDiskUsageHigh": (
        Firing([series(f"container_fs_usage_bytes{{{ROOT_FS}}}", "90x20"),
                series(f"container_fs_limit_bytes{{{ROOT_FS}}}", "100x20")], "16m", ROOT_FS_LABELS,
               shown={"humanizePercentage": "90%"}),
        # 97% belongs to HostDiskAlmostFull alone.
        Silent([series(f"container_fs_usage_bytes{{{ROOT_FS}}}", "97x20"),
                series(f"container_fs_limit_bytes{{{ROOT_FS}}}", "100x20")], "16m"),
    ),
    "HostDiskAlmostFull": (
        Firing([series(f"container_fs_usage_bytes{{{ROOT_FS}}}", "97x20"),
                series(f"container_fs_limit_bytes{{{ROOT_FS}}}", "100x20")], "16m", ROOT_FS_LABELS,
               shown={"humanizePercentage": "97%"}),
        Silent([series(f"container_fs_usage_bytes{{{ROOT_FS}}}", "90x20"),
                series(f"container_fs_limit_bytes{{{ROOT_FS}}}", "100x20")], "16m"),
    ),
    "HostDiskFillingUp": (
        # 10% used, growing 1% a minute: full in 90 minutes.
        Firing([series(f"container_fs_usage_bytes{{{ROOT_FS}}}", "100+10x40"),
                series(f"container_fs_limit_bytes{{{ROOT_FS}}}", "1000x40")], "30m", ROOT_FS_LABELS),
        Silent([series(f"container_fs_usage_bytes{{{ROOT_FS}}}", "500x40"),
                series(f"container_fs_limit_bytes{{{ROOT_FS}}}", "1000x40")], "30m"),
    ),
    "PostgresDown": (
        Firing([series(f"pg_up{{{PG}}}", "0x5")], "2m", {"instance": "postgres-exporter:9187", "job": "postgres_exporter"}),
        Silent([series(f"pg_up{{{PG}}}", "1x5")], "5m"),
    ),
    "PostgresTooManyConnections": (
        Firing([series(f'pg_stat_activity_count{{datname="gitea", state="active", {PG}}}', "50x10"),
                series(f'pg_stat_activity_count{{datname="keycloak", state="idle", {PG}}}', "40x10"),
                series(f"pg_settings_max_connections{{{PG}}}", "100x10")], "6m",
               {"instance": "postgres-exporter:9187"}, shown={"humanizePercentage": "90%"}),
        Silent([series(f'pg_stat_activity_count{{datname="gitea", state="active", {PG}}}', "20x10"),
                series(f'pg_stat_activity_count{{datname="keycloak", state="idle", {PG}}}', "10x10"),
                series(f"pg_settings_max_connections{{{PG}}}", "100x10")], "6m"),
    ),
    "PostgresReplicationLag": (
        Firing(patroni(100 * MIB, 68 * MIB), "6m",
               {"scope": "ceres", "name": "pg2", "instance": "pg2:8008", "job": "patroni"},
               shown={"humanize1024": "32Mi"}),
        # Caught up; the leader, whose replayed position is 0, must not count as lagging.
        Silent(patroni(100 * MIB, 100 * MIB), "6m"),
    ),
    "RedisDown": (
        Firing([series(f"redis_up{{{REDIS}}}", "0x5")], "2m", {"instance": "redis-exporter:9121", "job": "redis_exporter"}),
        Silent([series(f"redis_up{{{REDIS}}}", "1x5")], "5m"),
    ),
    "UptimeKumaMonitorDown": (
        Firing([series(f"monitor_status{{{KUMA}}}", "0x5")], "3m", KUMA_LABELS),
        # Pending (2) and maintenance (3) are not down.
        Silent([series(f"monitor_status{{{KUMA}}}", "2 2 2 3 3 3")], "5m"),
    ),
    "CertificateExpiringSoon": (
        Firing([series(f"monitor_cert_days_remaining{{{KUMA}}}", "10x5")], "1m", KUMA_LABELS, value="10"),
        # Two days left belongs to CertificateExpiring alone.
        Silent([series(f"monitor_cert_days_remaining{{{KUMA}}}", "2x5")], "1m"),
    ),
    "CertificateExpiring": (
        Firing([series(f"monitor_cert_days_remaining{{{KUMA}}}", "2x5")], "1m", KUMA_LABELS, value="2"),
        Silent([series(f"monitor_cert_days_remaining{{{KUMA}}}", "10x5")], "1m"),
    ),
    "BackupTooOld": (
        # The last success at t=0, seen hourly; 27h later it is past the 26h allowed.
        Firing([series(f'{BACKUP_SUCCESS_METRIC}{{job="backup", instance="backup:9100"}}', "0x30")], "27h",
               {"job": "backup", "instance": "backup:9100"}, shown={"humanizeDuration": "1d 3h 0m 0s"}, interval="1h"),
        Silent([series(f'{BACKUP_SUCCESS_METRIC}{{job="backup", instance="backup:9100"}}', "0+3600x30")], "27h",
               interval="1h"),
    ),
    "BackupMetricMissing": (
        Firing([series('up{job="prometheus", instance="localhost:9090"}', "1x30")], "27h", {}, interval="1h"),
        # Missing for less than the allowed age: a fresh stack before its first nightly backup.
        Silent([series('up{job="prometheus", instance="localhost:9090"}', "1x30")], "20h", interval="1h"),
    ),
    "PitrBackupTooOld": (
        # The newest backup at t=0, reported by both members; 49h later it is past the 48h allowed.
        Firing(agents(PITR_BACKUP_METRIC, "0x50"), "49h", {"job": "pgbackrest"},
               shown={"humanizeDuration": "2d 1h 0m 0s"}, interval="1h"),
        # A daily backup keeps the newest one young.
        Silent(agents(PITR_BACKUP_METRIC, "0x23 86400x24 172800x3"), "49h", interval="1h"),
    ),
    "PitrBackupMissing": (
        Firing([series(f"{PITR_REPOSITORY_METRIC}{{{AGENT}}}", "1x50")], "49h", {}, interval="1h"),
        # Missing for less than the allowed age: a cluster before its first full backup finished.
        Silent([series(f"{PITR_REPOSITORY_METRIC}{{{AGENT}}}", "1x50")], "40h", interval="1h"),
    ),
    "PitrRepositoryUnreachable": (
        Firing([series(f"{PITR_REPOSITORY_METRIC}{{{AGENT}}}", "0x20")], "16m", AGENT_LABELS),
        # One failed read (a store hiccup) is not yet an alert.
        Silent([series(f"{PITR_REPOSITORY_METRIC}{{{AGENT}}}", "1 1 0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1")], "16m"),
    ),
    "WalArchivingFailing": (
        Firing([series(f"{PITR_ARCHIVE_FAILING_METRIC}{{{AGENT}}}", "1x15")], "11m", AGENT_LABELS),
        Silent([series(f"{PITR_ARCHIVE_FAILING_METRIC}{{{AGENT}}}", "0 0 1 1 1 0 0 0 0 0 0 0 0 0 0")], "11m"),
    ),
}

_TEMPLATE = re.compile(r"\{\{\s*\$(labels\.(\w+)|value)\s*(?:\|\s*(\w+)\s*)?\}\}")


def expand(text: str, case: Firing) -> str:
    """What Prometheus makes of `text`'s `{{ $labels.x }}` / `{{ $value }}` / `{{ $value | f }}`."""
    def one(match: re.Match) -> str:
        label, function = match.group(2), match.group(3)
        if label is not None:
            assert label in case.labels, f"the template names label {label!r}, which the alert's series lack"
            return case.labels[label]
        if function is not None:
            assert function in case.shown, f"say how Prometheus shows `$value | {function}` in this case"
            return case.shown[function]
        assert case.value, "say how Prometheus shows `$value` in this case"
        return case.value
    expanded = _TEMPLATE.sub(one, text)
    assert "{{" not in expanded, f"a template this test cannot expand: {text!r}"
    return expanded


def rendered_rules(settings: AlertRuleSettings = FULL) -> dict[str, dict]:
    document = yaml.safe_load(prometheus_rules(settings))
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


def unit_tests(rules: dict[str, dict] | None = None) -> list[dict]:
    """A firing and a silent case per alert; the expected annotations come from `rules` (by alert
    name; default: every rule rendered), as the file under test words them."""
    rules = rules or rendered_rules()
    tests = []
    for name, (firing, silent) in CASES.items():
        if name not in rules:
            continue
        rule = rules[name]
        expected = {
            "exp_labels": {**firing.labels, **rule["labels"]},
            "exp_annotations": {key: expand(text, firing) for key, text in rule["annotations"].items()},
        }
        tests.append({"name": f"{name} fires", "interval": firing.interval, "input_series": firing.input,
                      "alert_rule_test": [{"eval_time": firing.at, "alertname": name, "exp_alerts": [expected]}]})
        tests.append({"name": f"{name} stays silent", "interval": silent.interval, "input_series": silent.input,
                      "alert_rule_test": [{"eval_time": silent.at, "alertname": name, "exp_alerts": []}]})
    return tests


def write_rules(directory: Path, settings: AlertRuleSettings) -> Path:
    path = directory / "ceres.yml"
    path.write_text(prometheus_rules(settings))
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("settings", [
    FULL,
    AlertRuleSettings(jobs=frozenset({"prometheus"})),
    AlertRuleSettings(jobs=ALL_JOBS, container_restart_window="30m", disk_usage_warning=0.7, backup_max_age="1d12h",
                      backup=True),
], ids=["everything", "prometheus-only", "tuned"])
def test_promtool_accepts_the_rules(tmp_path: Path, settings: AlertRuleSettings) -> None:
    result = run("check", "rules", str(write_rules(tmp_path, settings)))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(alerts) for alerts in alert_groups(settings).values())
    assert f"SUCCESS: {rules} rules found" in result.stdout


def test_every_alert_fires_when_it_should_and_stays_silent_otherwise(tmp_path: Path) -> None:
    assert set(CASES) == set(rendered_rules()), "every rendered alert needs a firing and a silent case"
    write_rules(tmp_path, FULL)
    tests = tmp_path / "ceres_test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": ["ceres.yml"], "evaluation_interval": "1m", "tests": unit_tests()},
                                    sort_keys=False))
    result = run("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_severity_and_the_annotations_people_act_on() -> None:
    for name, rule in rendered_rules().items():
        assert re.match(r"^[A-Z][a-zA-Z0-9]+$", name)
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert "{{ $labels." in annotations["summary"] + annotations["description"] or "Backup" in name, name
        assert "`" in annotations["runbook"], f"{name}: the runbook names a command to run"


def test_every_expression_parses_on_its_own() -> None:
    assert promql_problems([rule["expr"] for rule in rendered_rules().values()]) == []


def test_the_promql_helper_names_the_expression_that_does_not_parse() -> None:
    problems = promql_problems(["up == 0", "sum(rate(x[5m])", "up{job=}"])
    assert len(problems) == 2
    assert problems[0].startswith("'sum(rate(x[5m])'") and "parse error" in problems[0]
    assert problems[1].startswith("'up{job=}'")


def test_prometheus_loads_the_file_from_its_rules_glob(tmp_path: Path) -> None:
    """As /etc/prometheus holds them: prometheus.yml (rendered by its own module) and RULES_FILE."""
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_yml(PrometheusSettings(
        external_labels={"stack": "dev"}, jobs=(ScrapeJob("prometheus", ("localhost:9090",)),),
        alertmanagers=("alertmanager:9093",))))
    (tmp_path / RULES_FILE).parent.mkdir(parents=True)
    (tmp_path / RULES_FILE).write_text(prometheus_rules(FULL))
    assert fnmatch(RULES_FILE, yaml.safe_load(config.read_text())["rule_files"][0])
    result = run("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(alerts) for alerts in alert_groups(FULL).values())
    assert RULES_FILE in result.stdout and f"SUCCESS: {rules} rules found" in result.stdout


def test_the_uptime_kuma_alert_keeps_the_label_names_kuma_exports() -> None:
    rule = rendered_rules()["UptimeKumaMonitorDown"]
    assert rule["expr"] == "monitor_status == 0"
    used = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
    # Uptime Kuma 1.23's server/prometheus.js (2.0 adds monitor_id and tag labels).
    assert used <= {"monitor_name", "monitor_type", "monitor_url", "monitor_hostname", "monitor_port"}


@pytest.mark.parametrize("settings, absent", [
    (AlertRuleSettings(jobs=frozenset({"prometheus"})),
     {"ContainerRestarting", "PostgresDown", "RedisDown", "UptimeKumaMonitorDown", "PostgresReplicationLag",
      "BackupTooOld"}),
    (AlertRuleSettings(jobs=ALL_JOBS - {"redis_exporter"}), {"RedisDown"}),
    (AlertRuleSettings(jobs=ALL_JOBS - {"cadvisor"}), {"ContainerRestarting", "ContainerOutOfMemory", "HostCpuHigh",
                                                        "HostMemoryHigh", "HostDiskFillingUp"}),
    (AlertRuleSettings(jobs=ALL_JOBS - {"uptime_kuma"}), {"UptimeKumaMonitorDown", "CertificateExpiring"}),
    (AlertRuleSettings(jobs=ALL_JOBS, ha=False), {"PostgresReplicationLag"}),
    (AlertRuleSettings(jobs=ALL_JOBS, backup=False), {"BackupTooOld", "BackupMetricMissing"}),
    (AlertRuleSettings(jobs=ALL_JOBS, ha=True), {"PitrBackupTooOld", "PitrBackupMissing", "PitrRepositoryUnreachable",
                                                 "WalArchivingFailing"}),
], ids=["bare", "no-redis", "no-cadvisor", "no-kuma", "no-ha", "no-backup", "no-point-in-time"])
def test_alerts_for_absent_sources_are_not_rendered(settings: AlertRuleSettings, absent: set[str]) -> None:
    text = prometheus_rules(settings)
    assert "InstanceDown" in text
    for name in absent:
        assert name not in text


def test_thresholds_reach_the_expressions() -> None:
    rules = rendered_rules(AlertRuleSettings(jobs=ALL_JOBS, ha=True, backup=True, container_restarts=5,
                                             postgres_connections_fraction=0.75, backup_max_age="2d",
                                             replication_lag_bytes=MIB, instance_down_for="10m"))
    assert rules["ContainerRestarting"]["expr"].endswith("> 5")
    assert rules["PostgresTooManyConnections"]["expr"].endswith("> 0.75")
    assert rules["BackupTooOld"]["expr"].endswith("> 172800")
    assert rules["BackupMetricMissing"]["for"] == "2d"
    assert rules["PostgresReplicationLag"]["expr"].endswith(f"> {MIB}")
    assert rules["InstanceDown"]["for"] == "10m"


@pytest.mark.parametrize("changes, field_name", [
    ({"instance_down_for": "5 minutes"}, "instance_down_for"),
    ({"backup_max_age": "0h"}, "backup_max_age"),
    ({"disk_full_horizon": "1d2"}, "disk_full_horizon"),
    ({"disk_usage_warning": 1.0}, "disk_usage_warning"),
    ({"host_cpu_fraction": 90}, "host_cpu_fraction"),
    ({"host_memory_for": "ten minutes"}, "host_memory_for"),
    ({"postgres_connections_fraction": 0}, "postgres_connections_fraction"),
    ({"disk_usage_critical": 0.8}, "disk_usage_critical"),
    ({"cert_critical_days": 20}, "cert_critical_days"),
    ({"container_restarts": 0}, "container_restarts"),
    ({"replication_lag_bytes": "16MB"}, "replication_lag_bytes"),
    ({"jobs": frozenset({"Postgres Exporter"})}, "jobs"),
    ({"jobs": frozenset({"prometheus"}), "ha": True}, "ha"),
])
def test_bad_settings_fail_naming_the_field(changes: dict, field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        AlertRuleSettings(**{"jobs": ALL_JOBS, **changes})
