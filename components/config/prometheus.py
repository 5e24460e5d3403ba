"""Prometheus config text: `prometheus.yml` from typed scrape jobs, alerting targets and labels.

Pure functions of typed inputs; `tests/components/config/test_prometheus_promtool.py` feeds
their output to the real `promtool check config`. Every key rendered here means the same in
Prometheus 2.42 (Debian bookworm's promtool) and 3.5 (the pinned image): bearer tokens use
`authorization.credentials_file`, never the older `bearer_token_file`.

Scrape credentials never appear in the text: a job names its secret, the renderer names the
file it lives in, and the service uploads the value there as a secret file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

# Relative paths: Prometheus resolves `*_file` and `rule_files` against the config file's
# directory, so the same text is checked by promtool in a temp dir and used in /etc/prometheus.
SECRETS_DIR = "secrets"
RULES_GLOB = "rules/*.yml"

# A secret value (a pulumi Output[str] in the service); this module only ever names its file.
Secret = Any

_JOB_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_TARGET = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_DURATION = re.compile(r"^\d+(ms|s|m|h|d)$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _seconds(duration: str) -> float:
    if not _DURATION.match(duration):
        raise ValueError(f"{duration!r} is not a duration like 30s")
    number, unit = re.match(r"^(\d+)(ms|s|m|h|d)$", duration).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic auth for a scrape; the password goes to a secret file."""

    username: str
    password: Secret = field(repr=False, compare=False)


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job over static targets (`host:port`).

    At most one of `bearer_token` (sent as `Authorization: Bearer`, e.g. Gitea's metrics token)
    and `basic_auth` (e.g. Uptime Kuma's API key as the password). `hosts` names the Docker host
    of each target (label `host`, as the log shipper labels logs), for jobs whose alerts are
    about the host (cAdvisor's): `instance` is only an address or a container name.
    """

    name: str
    targets: tuple[str, ...]
    metrics_path: str = "/metrics"
    scheme: str = "http"
    bearer_token: Secret | None = field(default=None, repr=False, compare=False)
    basic_auth: BasicAuth | None = None
    scrape_interval: str | None = None
    hosts: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.hosts and set(self.hosts) != set(self.targets):
            raise ValueError(f"scrape job {self.name!r}: hosts must name the host of every target, and only those: {dict(self.hosts)!r}")
        if not _JOB_NAME.match(self.name):
            raise ValueError(f"scrape job name {self.name!r}: use lowercase letters, digits, '-' and '_' (it names a secrets directory)")
        if not self.targets or not all(_TARGET.match(t) for t in self.targets):
            raise ValueError(f"scrape job {self.name!r}: targets {self.targets!r} must be one or more host:port")
        if self.scheme not in ("http", "https"):
            raise ValueError(f"scrape job {self.name!r}: scheme {self.scheme!r} must be http or https")
        if not self.metrics_path.startswith("/"):
            raise ValueError(f"scrape job {self.name!r}: metrics_path {self.metrics_path!r} must start with '/'")
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError(f"scrape job {self.name!r}: Prometheus takes a bearer token or basic auth, not both")
        if self.scrape_interval is not None and not _DURATION.match(self.scrape_interval):
            raise ValueError(f"scrape job {self.name!r}: scrape_interval {self.scrape_interval!r} must be a duration like 30s")

    @property
    def bearer_token_file(self) -> str:
        return f"{SECRETS_DIR}/{self.name}/bearer_token"

    @property
    def password_file(self) -> str:
        return f"{SECRETS_DIR}/{self.name}/basic_auth_password"

    def secret_files(self) -> dict[str, Secret]:
        """The job's secrets by path relative to the config directory."""
        if self.bearer_token is not None:
            return {self.bearer_token_file: self.bearer_token}
        if self.basic_auth is not None:
            return {self.password_file: self.basic_auth.password}
        return {}

    def render(self) -> dict[str, Any]:
        job: dict[str, Any] = {"job_name": self.name}
        if self.scrape_interval:
            job["scrape_interval"] = self.scrape_interval
        job["metrics_path"] = self.metrics_path
        job["scheme"] = self.scheme
        if self.bearer_token is not None:
            job["authorization"] = {"type": "Bearer", "credentials_file": self.bearer_token_file}
        if self.basic_auth is not None:
            job["basic_auth"] = {"username": self.basic_auth.username, "password_file": self.password_file}
        if self.hosts:
            job["static_configs"] = [{"targets": [target], "labels": {"host": self.hosts[target]}} for target in self.targets]
        else:
            job["static_configs"] = [{"targets": list(self.targets)}]
        return job


@dataclass(frozen=True)
class PrometheusSettings:
    """Everything prometheus.yml says: where alerts go, what is scraped, how this stack is labelled."""

    external_labels: Mapping[str, str]
    jobs: tuple[ScrapeJob, ...]
    alertmanagers: tuple[str, ...] = ()
    scrape_interval: str = "30s"
    # At most the interval: Prometheus refuses a config whose timeout is longer.
    scrape_timeout: str = "10s"
    evaluation_interval: str = "30s"

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", tuple(self.jobs))
        object.__setattr__(self, "alertmanagers", tuple(self.alertmanagers))
        names = [job.name for job in self.jobs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"scrape job names must be unique; repeated: {duplicates}")
        for label in self.external_labels:
            if not _LABEL_NAME.match(label):
                raise ValueError(f"external label {label!r} is not a Prometheus label name")
        if _seconds(self.scrape_timeout) > _seconds(self.scrape_interval):
            raise ValueError(f"scrape_timeout {self.scrape_timeout} is longer than scrape_interval {self.scrape_interval}")
        for target in self.alertmanagers:
            if not _TARGET.match(target):
                raise ValueError(f"alertmanager {target!r} must be host:port")


def prometheus_yml(settings: PrometheusSettings) -> str:
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": settings.scrape_interval,
            "scrape_timeout": settings.scrape_timeout,
            "evaluation_interval": settings.evaluation_interval,
            "external_labels": dict(settings.external_labels),
        },
    }
    if settings.alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(settings.alertmanagers)}]}]}
    # Alert rules arrive in a later issue as files in rules/; a glob that matches nothing is valid.
    config["rule_files"] = [RULES_GLOB]
    config["scrape_configs"] = [job.render() for job in settings.jobs]
    return "# Rendered by CERES: edit the typed inputs, not this file.\n" + yaml.safe_dump(config, sort_keys=False)


def secret_files(settings: PrometheusSettings) -> dict[str, Secret]:
    """Every job's secrets, by path relative to the config directory."""
    return {path: value for job in settings.jobs for path, value in job.secret_files().items()}
