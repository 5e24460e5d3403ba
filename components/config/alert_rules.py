"""Prometheus alert rules: one rules file for this stack, only the groups whose metrics it has.

Pure functions of typed inputs; `tests/components/config/test_alert_rules.py` runs the rendered
text through the real `promtool check rules` and `promtool test rules` (a firing and a silent
case for every alert). Only PromQL that Prometheus 2.42 (Debian's promtool) and 3.5 (the pinned
image) read the same way.

Metric sources, checked upstream: cAdvisor (`container_*`, root cgroup `id="/"` for the host's
filesystem, `machine_cpu_cores` and `machine_memory_bytes` from its machine collector, which
`--enable_metrics` does not filter; each target labelled `host`, its Docker host's name), postgres_exporter (`pg_up`, `pg_stat_activity_count`, `pg_settings_max_connections`),
redis_exporter (`redis_up`), Uptime Kuma 1.23 server/prometheus.js (`monitor_status`: 1 up,
0 down, 2 pending, 3 maintenance; `monitor_cert_days_remaining`; labels `monitor_name`,
`monitor_type`, `monitor_url`, `monitor_hostname`, `monitor_port`), Patroni 4 `/metrics`
(docs/rest_api.rst: `patroni_xlog_location` is the WAL position on the leader and 0 elsewhere,
`patroni_xlog_replayed_location` the replayed position on a replica and 0 elsewhere,
`patroni_replica` 1 on replicas; labels `scope`, `name`). Patroni exports no lag metric of its
own, so lag is the leader's position minus each replica's replayed position, in bytes: a byte
lag, unlike `patroni_xlog_replayed_timestamp`, does not grow on a replica of an idle primary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# The backup job (issue 8) exports this gauge: Unix time of the last backup that succeeded.
BACKUP_SUCCESS_METRIC = "ceres_backup_last_success_timestamp_seconds"

# The pgBackRest agent on every Patroni member (issue 8, prod): the repository as each member reads
# it, and on the leader the WAL archiver's state (components/config/pitr_agent.py).
PITR_BACKUP_METRIC = "ceres_pitr_last_backup_timestamp_seconds"
PITR_REPOSITORY_METRIC = "ceres_pitr_repository_up"
PITR_ARCHIVE_FAILING_METRIC = "ceres_pitr_wal_archive_failing"

# Relative to Prometheus' config directory, matching `RULES_GLOB` in components/config/prometheus.py.
RULES_FILE = "rules/ceres.yml"

SEVERITIES = ("critical", "warning")

_JOB_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# Prometheus' duration syntax (common/model.ParseDuration): units largest first, each at most once.
_DURATION = re.compile(r"^(?=\d)(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)

# Fields of AlertRuleSettings by kind, so each is validated the same way.
_DURATIONS = ("instance_down_for", "container_restart_window", "host_cpu_for", "host_memory_for", "disk_for", "disk_fill_window", "disk_full_horizon",
              "postgres_down_for", "postgres_connections_for", "replication_lag_for", "redis_down_for",
              "monitor_down_for", "backup_max_age", "pitr_backup_max_age", "pitr_repository_down_for",
              "wal_archive_failing_for")
_FRACTIONS = ("host_cpu_fraction", "host_memory_fraction", "disk_usage_warning", "disk_usage_critical", "postgres_connections_fraction")
_COUNTS = ("container_restarts", "replication_lag_bytes", "cert_warning_days", "cert_critical_days")

# Where to look for a service's container on its Docker host (components/container.py labels it).
_CONTAINER = "`docker ps -a --filter label=io.ceres.service={service}`"


def duration_seconds(duration: str) -> float:
    """Seconds in a Prometheus duration such as "26h" or "1h30m"."""
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"{duration!r} is not a Prometheus duration")
    return sum(int(count) * unit for count, unit in zip(match.groups(), _UNIT_SECONDS) if count)


def _number(value: float) -> str:
    """A PromQL number literal without float noise (85, not 85.00000000000001)."""
    rounded = round(float(value), 9)
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


@dataclass(frozen=True)
class AlertRuleSettings:
    """What this stack scrapes, and when each alert fires.

    `jobs`: the scrape job names present (the CERES service names); a group whose exporter is
    absent is left out. `ha`: the prod HA tier, whose Patroni members are scraped as job
    `patroni` (replication lag). `backup`: a backup job exports BACKUP_SUCCESS_METRIC.
    `point_in_time`: the members' pgBackRest agents are scraped as job `pgbackrest`.
    Durations are Prometheus durations ("5m"); fractions lie strictly between 0 and 1.
    """

    jobs: frozenset[str]
    ha: bool = False
    backup: bool = False
    point_in_time: bool = False
    # A target a scrape or two could miss during a container replacement is not down yet.
    instance_down_for: str = "5m"
    # More restarts than this within the window: a crash loop, not a deploy.
    container_restarts: int = 2
    container_restart_window: str = "15m"
    # The containers together, against what the host has (cAdvisor's machine_* metrics): a host
    # this busy for this long answers slowly, and a failover onto it would make it worse.
    host_cpu_fraction: float = 0.9
    host_cpu_for: str = "15m"
    host_memory_fraction: float = 0.9
    host_memory_for: str = "10m"
    disk_usage_warning: float = 0.85
    disk_usage_critical: float = 0.95
    disk_for: str = "15m"
    # The trend over `disk_fill_window` says the disk is full within `disk_full_horizon`.
    disk_fill_window: str = "6h"
    disk_full_horizon: str = "24h"
    postgres_down_for: str = "1m"
    postgres_connections_fraction: float = 0.8
    postgres_connections_for: str = "5m"
    # 16 MiB: past Patroni's default maximum_lag_on_failover (1 MiB) for long enough that the
    # replica is no failover candidate, yet clear of the bursts a bulk write causes.
    replication_lag_bytes: int = 16 * 1024 * 1024
    replication_lag_for: str = "5m"
    redis_down_for: str = "1m"
    # Uptime Kuma retries before it marks a monitor down; this only rides out one flap.
    monitor_down_for: str = "2m"
    cert_warning_days: int = 14
    cert_critical_days: int = 3
    # Nightly backups, plus slack for a slow run.
    backup_max_age: str = "26h"
    # Twice the differential interval: one missed run is a warning sign, two are an alert.
    pitr_backup_max_age: str = "48h"
    pitr_repository_down_for: str = "15m"
    # archive_command retries each segment; a few minutes of failures is a store hiccup, not yet a gap.
    wal_archive_failing_for: str = "10m"

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", frozenset(self.jobs))
        bad_jobs = sorted(job for job in self.jobs if not isinstance(job, str) or not _JOB_NAME.match(job))
        if bad_jobs:
            raise ValueError(f"jobs: {bad_jobs!r} are not scrape job names (lowercase letters, digits, '-', '_')")
        for name in _DURATIONS:
            value = getattr(self, name)
            if not isinstance(value, str) or not _DURATION.match(value) or duration_seconds(value) <= 0:
                raise ValueError(f"{name}={value!r}: give a Prometheus duration above zero such as '5m' or '1h30m'")
        for name in _FRACTIONS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"{name}={value!r}: give a fraction strictly between 0 and 1, e.g. 0.8")
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: give a whole number of at least 1")
        if self.disk_usage_critical <= self.disk_usage_warning:
            raise ValueError(f"disk_usage_critical={self.disk_usage_critical!r} must exceed "
                             f"disk_usage_warning={self.disk_usage_warning!r}")
        if self.cert_critical_days >= self.cert_warning_days:
            raise ValueError(f"cert_critical_days={self.cert_critical_days!r} must be fewer than "
                             f"cert_warning_days={self.cert_warning_days!r}")
        if self.ha and "patroni" not in self.jobs:
            raise ValueError("ha=True: replication lag comes from Patroni's metrics; add 'patroni' to jobs")
        if self.point_in_time and "pgbackrest" not in self.jobs:
            raise ValueError("point_in_time=True: the backup ages come from the pgBackRest agents; add 'pgbackrest' to jobs")


@dataclass(frozen=True)
class Alert:
    """One alerting rule; `summary`, `description` and `runbook` may use `{{ $labels.x }}`."""

    name: str
    expr: str
    severity: str
    summary: str
    description: str
    runbook: str
    for_: str | None = None

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Z][A-Za-z0-9]+$", self.name):
            raise ValueError(f"alert name {self.name!r} must be CamelCase")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert {self.name}: severity {self.severity!r} must be one of {SEVERITIES}")

    def render(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {"summary": self.summary, "description": self.description, "runbook": self.runbook}
        return rule


def _availability(s: AlertRuleSettings) -> list[Alert]:
    return [Alert(
        "InstanceDown", "up == 0", "critical",
        "{{ $labels.job }} is down",
        "Prometheus could not scrape {{ $labels.job }} at {{ $labels.instance }} for " + s.instance_down_for + ".",
        "Is the container running and healthy? " + _CONTAINER.format(service="{{ $labels.job }}")
        + ", then `docker logs --tail 100 <container>`; the scrape error is on Prometheus' /targets page.",
        s.instance_down_for,
    )]


def _containers(s: AlertRuleSettings) -> list[Alert]:
    usage = 'container_fs_usage_bytes{id="/"}'
    limit = 'container_fs_limit_bytes{id="/"}'
    disk = f"{usage} / {limit}"
    # The warning stops where the critical alert starts: different names are not inhibited.
    warning_band = f"{disk} > {_number(s.disk_usage_warning)} and {disk} <= {_number(s.disk_usage_critical)}"
    disk_runbook = ("On the Docker host: `df -h /` and `docker system df`; reclaim with `docker image prune -a` "
                    "and `docker builder prune`, then look for a volume or log growing without bound.")
    return [
        Alert(
            "ContainerRestarting",
            f'changes(container_start_time_seconds{{name!=""}}[{s.container_restart_window}]) > {s.container_restarts}',
            "warning",
            "Container {{ $labels.name }} keeps restarting",
            "{{ $labels.name }} ({{ $labels.image }}) started {{ $value }} times in the last "
            + s.container_restart_window + ".",
            "`docker logs --tail 200 {{ $labels.name }}` shows why it exits; `docker inspect {{ $labels.name }}` "
            "shows its last exit code and health (137: killed, often out of memory).",
        ),
        Alert(
            "ContainerOutOfMemory",
            f'increase(container_oom_events_total{{name!=""}}[{s.container_restart_window}]) > 0',
            "warning",
            "Container {{ $labels.name }} ran out of memory",
            "The kernel killed a process of {{ $labels.name }} ({{ $labels.image }}) for exceeding its memory limit.",
            "`docker stats --no-stream {{ $labels.name }}` against its limit; raise the service's memory in "
            "stacks/tiers.py, or find what grew (`docker logs {{ $labels.name }}`).",
        ),
        Alert(
            "HostCpuHigh",
            f'sum by (instance, host) (rate(container_cpu_usage_seconds_total{{name!=""}}[5m])) '
            f"/ on (instance, host) max by (instance, host) (machine_cpu_cores) > {_number(s.host_cpu_fraction)}",
            "warning",
            "CPU of {{ $labels.host }} is {{ $value | humanizePercentage }} busy",
            "The containers on the Docker host {{ $labels.host }} have used over "
            f"{_number(s.host_cpu_fraction * 100)}% of its CPUs for {s.host_cpu_for}.",
            "Which container: Grafana's CERES containers dashboard, or `docker stats --no-stream` on the host; "
            "a crash-looping or runaway service is the usual cause, steady growth means the host needs more CPUs.",
            s.host_cpu_for,
        ),
        Alert(
            "HostMemoryHigh",
            f'sum by (instance, host) (container_memory_working_set_bytes{{name!=""}}) '
            f"/ on (instance, host) max by (instance, host) (machine_memory_bytes) > {_number(s.host_memory_fraction)}",
            "warning",
            "Memory of {{ $labels.host }} is {{ $value | humanizePercentage }} used",
            "The containers on the Docker host {{ $labels.host }} hold over "
            f"{_number(s.host_memory_fraction * 100)}% of its memory (working set: what they use, active "
            "file cache included, which the kernel can still reclaim): their limits add up to more than the "
            "host has, and it is close to running out.",
            "`docker stats --no-stream` on the host against each service's limit (stacks/tiers.py); lower a "
            "limit that is larger than the service needs, or give the host more memory.",
            s.host_memory_for,
        ),
        Alert(
            "HostDiskUsageHigh", warning_band, "warning",
            "Disk of {{ $labels.host }} is {{ $value | humanizePercentage }} full",
            "The Docker host's root filesystem ({{ $labels.device }}) is over "
            f"{_number(s.disk_usage_warning * 100)}% used.",
            disk_runbook, s.disk_for,
        ),
        Alert(
            "HostDiskAlmostFull", f"{disk} > {_number(s.disk_usage_critical)}", "critical",
            "Disk of {{ $labels.host }} is almost full ({{ $value | humanizePercentage }})",
            "The Docker host's root filesystem ({{ $labels.device }}) is over "
            f"{_number(s.disk_usage_critical * 100)}% used: databases stop writing when it fills.",
            disk_runbook, s.disk_for,
        ),
        Alert(
            "HostDiskFillingUp",
            f"predict_linear({usage}[{s.disk_fill_window}], {_number(duration_seconds(s.disk_full_horizon))}) > {limit}",
            "warning",
            "Disk of {{ $labels.host }} fills within " + s.disk_full_horizon,
            "At the rate of the last " + s.disk_fill_window + ", the Docker host's root filesystem "
            "({{ $labels.device }}) is full within " + s.disk_full_horizon + ".",
            disk_runbook, s.disk_for,
        ),
    ]


def _postgres(s: AlertRuleSettings) -> list[Alert]:
    return [
        Alert(
            "PostgresDown", "pg_up == 0", "critical",
            "PostgreSQL is unreachable",
            "postgres_exporter at {{ $labels.instance }} cannot connect to PostgreSQL: every database consumer is failing.",
            (("The exporter reaches the cluster through HAProxy on the virtual IP: on an HA host, "
              "`docker exec -u postgres ceres-<stack>-patroni-<host> /opt/patroni/bin/patronictl -c /etc/patroni/patroni.yml list` "
              "shows which member leads; HAProxy's /stats (port 8404) shows where writes go.")
             if s.ha else
             _CONTAINER.format(service="postgres") + " and `docker logs --tail 100 <container>`; "
             "then `pg_isready` inside it."),
            s.postgres_down_for,
        ),
        Alert(
            "PostgresTooManyConnections",
            "sum by (instance) (pg_stat_activity_count) / max by (instance) (pg_settings_max_connections) > "
            + _number(s.postgres_connections_fraction),
            "warning",
            "PostgreSQL connections at {{ $value | humanizePercentage }} of max_connections",
            "More than " + _number(s.postgres_connections_fraction * 100) + "% of max_connections are in use "
            "(seen by {{ $labels.instance }}): "
            "new connections will soon be refused.",
            "Which client holds them: `SELECT datname, usename, state, count(*) FROM pg_stat_activity "
            "GROUP BY 1, 2, 3 ORDER BY 4 DESC;` (psql in the postgres container); look for a leaking pool.",
            s.postgres_connections_for,
        ),
    ]


def _replication(s: AlertRuleSettings) -> list[Alert]:
    # The leader's position (replicas report 0, so `max` picks it) minus each replica's replay position.
    lag = ("max by (scope) (patroni_xlog_location) - on (scope) group_right () "
           "(patroni_xlog_replayed_location and on (instance) (patroni_replica == 1))")
    return [Alert(
        "PostgresReplicationLag", f"({lag}) > {s.replication_lag_bytes}", "warning",
        "Replica {{ $labels.name }} lags the primary",
        "Patroni member {{ $labels.name }} (cluster {{ $labels.scope }}) has replayed "
        "{{ $value | humanize1024 }}B less WAL than the leader: it is not a safe failover target.",
        "`patronictl list` shows each member's lag and state; on the replica check disk I/O and "
        "`docker logs --tail 100 <replica>` for streaming errors.",
        s.replication_lag_for,
    )]


def _redis(s: AlertRuleSettings) -> list[Alert]:
    return [Alert(
        "RedisDown", "redis_up == 0", "critical",
        "Redis is unreachable",
        "redis_exporter at {{ $labels.instance }} cannot reach Redis: sessions, caches and queues are failing.",
        _CONTAINER.format(service="redis") + " and `docker logs --tail 100 <container>`; "
        "then `redis-cli ping` inside it.",
        s.redis_down_for,
    )]


def _endpoints(s: AlertRuleSettings) -> list[Alert]:
    # HTTP monitors carry the URL; Kuma exports monitor_hostname as "null" for them.
    cert_runbook = ("`curl -svo /dev/null {{ $labels.monitor_url }} 2>&1 | grep -i 'expire date'`; Caddy renews "
                    "on its own: `docker logs <caddy container> 2>&1 | grep -i acme` shows why it did not.")
    cert = "monitor_cert_days_remaining"
    return [
        Alert(
            "UptimeKumaMonitorDown", "monitor_status == 0", "critical",
            "{{ $labels.monitor_name }} is down",
            "Uptime Kuma's {{ $labels.monitor_type }} monitor {{ $labels.monitor_name }} "
            "({{ $labels.monitor_url }}) reports DOWN.",
            "Uptime Kuma's monitor page shows the error it saw; `curl -sSv {{ $labels.monitor_url }}` shows what "
            "clients get; then the service's container (`docker ps -a --filter label=io.ceres.service=<service>`).",
            s.monitor_down_for,
        ),
        Alert(
            "CertificateExpiringSoon",
            f"{cert} < {s.cert_warning_days} and {cert} >= {s.cert_critical_days}", "warning",
            "Certificate of {{ $labels.monitor_name }} expires in {{ $value }} days",
            "The TLS certificate seen by Uptime Kuma at {{ $labels.monitor_url }} expires in {{ $value }} days.",
            cert_runbook,
        ),
        Alert(
            "CertificateExpiring", f"{cert} < {s.cert_critical_days}", "critical",
            "Certificate of {{ $labels.monitor_name }} expires in {{ $value }} days",
            "The TLS certificate seen by Uptime Kuma at {{ $labels.monitor_url }} expires in {{ $value }} days: "
            "browsers and API clients will refuse it.",
            cert_runbook,
        ),
    ]


def _backups(s: AlertRuleSettings) -> list[Alert]:
    max_age = _number(duration_seconds(s.backup_max_age))
    runbook = ("`docker logs --tail 200 <backup container>` for the last run's error; `restic snapshots` lists "
               "what the repository holds.")
    return [
        Alert(
            "BackupTooOld", f"time() - {BACKUP_SUCCESS_METRIC} > {max_age}", "critical",
            "Last successful backup is older than " + s.backup_max_age,
            "The last backup that succeeded finished {{ $value | humanizeDuration }} ago.",
            runbook,
        ),
        # `for` = the allowed age: a fresh stack has no backup until its first nightly run.
        Alert(
            "BackupMetricMissing", f"absent({BACKUP_SUCCESS_METRIC})", "warning",
            "No backup has reported success",
            f"Backups are configured but Prometheus has no {BACKUP_SUCCESS_METRIC} for {s.backup_max_age}: "
            "the backup job is not running, or not exporting its result.",
            "Is the backup job scheduled and scraped? " + runbook,
            s.backup_max_age,
        ),
    ]


def _point_in_time(s: AlertRuleSettings) -> list[Alert]:
    max_age = _number(duration_seconds(s.pitr_backup_max_age))
    logs = "`docker logs --tail 200 <patroni container>` on that member for the agent's and pgBackRest's last error"
    return [
        # Every member reports the same repository: the newest backup of any type, across members.
        Alert(
            "PitrBackupTooOld", f"time() - max by (job) ({PITR_BACKUP_METRIC}) > {max_age}", "critical",
            "Last point-in-time backup is older than " + s.pitr_backup_max_age,
            "The newest pgBackRest backup of the PostgreSQL cluster finished {{ $value | humanizeDuration }} ago:"
            " restores replay ever more WAL, and the archive cannot be expired.",
            f"The leader's agent takes the backups: {logs}; `pgbackrest info` in a member shows the repository.",
        ),
        Alert(
            "PitrBackupMissing", f"absent({PITR_BACKUP_METRIC})", "warning",
            "No point-in-time backup in the repository",
            f"Point-in-time recovery is configured but no member has reported a pgBackRest backup for "
            f"{s.pitr_backup_max_age}: the cluster cannot be restored to a moment.",
            f"Are the agents scraped (job pgbackrest) and can they reach the bucket? {logs}.",
            s.pitr_backup_max_age,
        ),
        Alert(
            "PitrRepositoryUnreachable", f"{PITR_REPOSITORY_METRIC} == 0", "critical",
            "{{ $labels.instance }} cannot read the point-in-time repository",
            "The pgBackRest agent at {{ $labels.instance }} has not read the repository for "
            f"{s.pitr_repository_down_for}: as leader this member could neither archive WAL nor back up.",
            f"Bucket, keys (backup_s3_access_key/backup_s3_secret_key) and the network to the store; {logs}.",
            s.pitr_repository_down_for,
        ),
        Alert(
            "WalArchivingFailing", f"{PITR_ARCHIVE_FAILING_METRIC} == 1", "critical",
            "WAL archiving fails on {{ $labels.instance }}",
            "The leader at {{ $labels.instance }} has failed to archive WAL for "
            f"{s.wal_archive_failing_for}: the recovery window has a gap from then on, and unarchived WAL fills"
            " the member's disk.",
            f"PostgreSQL's log on the leader names archive-push's error; {logs}.",
            s.wal_archive_failing_for,
        ),
    ]


def alert_groups(settings: AlertRuleSettings) -> dict[str, list[Alert]]:
    """The rule groups this stack's metrics can evaluate, by group name."""
    groups = {"ceres-availability": _availability(settings)}
    if "cadvisor" in settings.jobs:
        groups["ceres-containers"] = _containers(settings)
    if "postgres_exporter" in settings.jobs:
        groups["ceres-postgres"] = _postgres(settings)
    if settings.ha:
        groups["ceres-replication"] = _replication(settings)
    if "redis_exporter" in settings.jobs:
        groups["ceres-redis"] = _redis(settings)
    if "uptime_kuma" in settings.jobs:
        groups["ceres-endpoints"] = _endpoints(settings)
    if settings.backup:
        groups["ceres-backups"] = _backups(settings)
    if settings.point_in_time:
        groups["ceres-point-in-time"] = _point_in_time(settings)
    return groups


def prometheus_rules(settings: AlertRuleSettings) -> str:
    """One Prometheus rules file (`groups: ...`) for RULES_FILE."""
    document = {"groups": [
        {"name": name, "rules": [alert.render() for alert in alerts]}
        for name, alerts in alert_groups(settings).items()
    ]}
    return "# Rendered by CERES: edit the typed inputs, not this file.\n" + yaml.safe_dump(
        document, sort_keys=False, width=1000, allow_unicode=True)
