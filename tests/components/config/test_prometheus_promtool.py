"""The rendered prometheus.yml, checked by the real `promtool check config`.

promtool is Debian bookworm's (`apt-get install -y prometheus`, 2.42); the pinned image is
v3.5. The renderer emits only keys both read the same way (global intervals and
external_labels, alerting.alertmanagers[].static_configs, rule_files, and per job job_name,
scrape_interval, metrics_path, scheme, static_configs, authorization.credentials_file,
basic_auth.password_file): no `bearer_token_file` (deprecated in 2.x), no `api_version`
(v1 is gone in 3.x, v2 is the default in both), none of 3.x's new scrape keys.

The config is written into a temp dir, the way it sits in /etc/prometheus: promtool resolves
`rule_files` and `*_file` against that directory and checks that credential files exist.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.config.prometheus import (
    RULES_GLOB,
    BasicAuth,
    PrometheusSettings,
    ScrapeJob,
    prometheus_yml,
    secret_files,
)

TIMEOUT = 30
SELF = ScrapeJob("prometheus", ("localhost:9090",))
GITEA = ScrapeJob("gitea", ("gitea:3000",), bearer_token="gitea-metrics-token-value")
KUMA = ScrapeJob("uptime_kuma", ("uptime-kuma:3001",), basic_auth=BasicAuth("ceres", "uk1_kuma-api-key-value"))


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: `apt-get install -y prometheus` (Debian ships promtool in that package)")
    return path


def settings(*jobs: ScrapeJob, alertmanagers: tuple[str, ...] = ("alertmanager:9093",)) -> PrometheusSettings:
    return PrometheusSettings(external_labels={"stack": "dev", "tier": "dev"}, jobs=(SELF, *jobs), alertmanagers=alertmanagers)


def write(directory: Path, rendered: PrometheusSettings, with_secrets: bool = True) -> Path:
    """prometheus.yml plus its secret files, laid out as the service uploads them."""
    config = directory / "prometheus.yml"
    config.write_text(prometheus_yml(rendered))
    if with_secrets:
        for relative, value in secret_files(rendered).items():
            (directory / relative).parent.mkdir(parents=True, exist_ok=True)
            (directory / relative).write_text(value)
    return config


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True, timeout=TIMEOUT)


def test_the_default_config_prometheus_scraping_itself_is_valid(tmp_path: Path) -> None:
    result = check(write(tmp_path, settings(alertmanagers=())))
    assert result.returncode == 0, result.stdout + result.stderr
    parsed = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert parsed["rule_files"] == [RULES_GLOB]
    assert "alerting" not in parsed
    assert [job["job_name"] for job in parsed["scrape_configs"]] == ["prometheus"]


def test_a_config_with_bearer_token_and_basic_auth_jobs_and_alertmanager_is_valid(tmp_path: Path) -> None:
    rendered = settings(GITEA, KUMA)
    result = check(write(tmp_path, rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    parsed = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert parsed["global"]["external_labels"] == {"stack": "dev", "tier": "dev"}
    assert parsed["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
    jobs = {job["job_name"]: job for job in parsed["scrape_configs"]}
    assert jobs["gitea"]["authorization"] == {"type": "Bearer", "credentials_file": "secrets/gitea/bearer_token"}
    assert jobs["uptime_kuma"]["basic_auth"] == {"username": "ceres", "password_file": "secrets/uptime_kuma/basic_auth_password"}


def test_secrets_are_only_referenced_never_inline(tmp_path: Path) -> None:
    text = prometheus_yml(settings(GITEA, KUMA))
    assert "gitea-metrics-token-value" not in text and "uk1_kuma-api-key-value" not in text
    assert "bearer_token_file" not in text and "credentials:" not in text and "password:" not in text
    # promtool really reads the credentials file: without it the config is refused.
    result = check(write(tmp_path, settings(GITEA), with_secrets=False))
    assert result.returncode != 0 and "secrets/gitea/bearer_token" in result.stdout + result.stderr


def test_rule_files_in_the_rules_directory_are_picked_up(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "platform.yml").write_text("groups: []\n")
    result = check(write(tmp_path, settings()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules/platform.yml" in result.stdout + result.stderr


def test_a_job_naming_each_targets_host_labels_every_target_and_is_valid(tmp_path: Path) -> None:
    cadvisor = ScrapeJob("cadvisor", ("cadvisor:8080", "10.0.0.12:8080"),
                         hosts={"cadvisor:8080": "node1", "10.0.0.12:8080": "node2"})
    result = check(write(tmp_path, settings(cadvisor)))
    assert result.returncode == 0, result.stdout + result.stderr
    job = next(j for j in yaml.safe_load((tmp_path / "prometheus.yml").read_text())["scrape_configs"] if j["job_name"] == "cadvisor")
    assert job["static_configs"] == [{"targets": ["cadvisor:8080"], "labels": {"host": "node1"}},
                                     {"targets": ["10.0.0.12:8080"], "labels": {"host": "node2"}}]


@pytest.mark.parametrize("bad", [
    lambda: ScrapeJob("cadvisor", ("cadvisor:8080", "10.0.0.12:8080"), hosts={"cadvisor:8080": "node1"}),
    lambda: ScrapeJob("Gitea Metrics", ("gitea:3000",)),
    lambda: ScrapeJob("gitea", ()),
    lambda: ScrapeJob("gitea", ("http://gitea:3000",)),
    lambda: ScrapeJob("gitea", ("gitea:3000",), scheme="ftp"),
    lambda: ScrapeJob("gitea", ("gitea:3000",), metrics_path="metrics"),
    lambda: ScrapeJob("gitea", ("gitea:3000",), bearer_token="t", basic_auth=BasicAuth("u", "p")),
    lambda: settings(SELF),
    lambda: PrometheusSettings(external_labels={"bad-label": "x"}, jobs=(SELF,)),
])
def test_rendering_fails_on_what_prometheus_would_refuse(bad) -> None:
    with pytest.raises(ValueError):
        bad()


def test_secret_values_stay_out_of_reprs() -> None:
    assert "gitea-metrics-token-value" not in repr(GITEA)
    assert "uk1_kuma-api-key-value" not in repr(KUMA)
