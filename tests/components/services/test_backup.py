"""The backup service under the recording engine, as the real composition builds it."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pulumi
import pytest

from components.config import backup as config
from components.config.postgres import BACKUP_ROLE
from components.services.backup import KEPT_SERVICES
from tests.support import by_name, of_type

# Volumes not copied, each for a reason: PostgreSQL's files (its databases are dumped), state that
# refills or is rebuilt (caches, metrics, logs, traces, mirrors), and the backup's own state.
NOT_COPIED = {"postgres-data", "redis-data", "prometheus-data", "loki-data", "tempo-data", "alloy-data",
              "backup-state", "repositories", "repo_sync-state"}
# The HA tier's members: PostgreSQL's files (dumped through HAProxy), etcd's and Sentinel's state
# (rebuilt by the cluster), Redis (a cache), each HA host's log shipper.
NOT_COPIED_PREFIXES = ("patroni-", "etcd-", "redis-node", "alloy-node")


def container(run):
    return by_name(run, "backup", "Container")


def mounts(run) -> dict[str, dict]:
    return {m["containerPath"]: m for m in container(run).inputs["volumes"]}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_stateful_volume_is_in_the_backup_read_write_for_restores(offline, stack):
    run = offline(stack)
    volumes = {v.inputs["name"].removeprefix(f"ceres-{stack}-") for v in of_type(run, "Volume")}
    probe = {name for name in volumes if "probe" in name}
    copied = {path.removeprefix(f"{config.ROOT}/volumes/") for path in mounts(run) if path.startswith(f"{config.ROOT}/volumes/")}
    ha_members = {name for name in volumes if name.startswith(NOT_COPIED_PREFIXES)}
    assert copied == volumes - NOT_COPIED - probe - ha_members
    assert {"gitea-data", "nextcloud-data", "wikijs-data", "mattermost-data", "grafana-data", "redmine-files"} <= copied
    for name in copied:
        assert not mounts(run)[f"{config.ROOT}/volumes/{name}"].get("readOnly"), name


def test_every_database_is_dumped_as_the_backup_superuser_over_the_data_network(offline):
    run = offline("dev")
    script = next(u["content"] for u in container(run).inputs["uploads"] if u["file"].endswith("/backup.sh"))
    consumers = [r.name.removeprefix("postgres-").removesuffix("-database") for r in of_type(run, "Command")
                 if r.name.startswith("postgres-") and r.name.endswith("-database")]
    assert consumers
    for database in consumers:
        assert f"pg_dump -h postgres -p 5432 -U {BACKUP_ROLE} -Fc" in script and f"{database}.dump" in script
    hba = next(u["content"] for u in by_name(run, "postgres", "Container").inputs["uploads"] if u["file"].endswith("pg_hba.conf"))
    assert f"host    all  {BACKUP_ROLE}  all  scram-sha-256" in hba
    assert hba.index(BACKUP_ROLE) < hba.index("reject")
    assert {n["name"] for n in container(run).inputs["networksAdvanced"]} == {"ceres-dev-data", "ceres-dev-monitoring"}


def test_secrets_reach_the_container_only_as_secret_files_and_the_password_is_a_secret_output(offline):
    run = offline("dev")
    backup = container(run)
    secret_paths = {u["file"] for u in backup.inputs["uploads"] if u["content"] == "[secret]"}
    assert secret_paths == {"/run/ceres/restic-password", "/run/ceres/pgpass"}
    assert "RESTIC_PASSWORD_FILE=/run/ceres/restic-password" in backup.inputs["envs"]
    for resource in run.resources:
        assert "offline-" not in json.dumps(resource.inputs), resource.name
    password = run.outputs["backup_password"]
    # Everything it depends on resolved during the run, so asking now needs no engine.
    assert isinstance(password, pulumi.Output) and asyncio.run(password.is_secret()) is True


def test_the_dev_repository_is_a_host_path_outside_every_volume(offline):
    run = offline("dev")
    repository = mounts(run)["/var/backups/ceres"]
    assert repository["hostPath"] == "/var/backups/ceres" and not repository.get("readOnly")
    prod = offline("prod")
    assert "/var/backups/ceres" not in mounts(prod)


def test_the_schedule_and_the_metric_for_prometheus(offline):
    run = offline("dev", backup={"schedule": "30 2 * * *"})
    entry = next(u["content"] for u in container(run).inputs["uploads"] if u["file"].endswith("ceres-backup-entry"))
    assert "30 2 * * * sh /usr/local/bin/backup.sh" in entry
    assert subprocess.run(["sh", "-n"], input=entry, text=True).returncode == 0
    prometheus = by_name(run, "prometheus", "Container")
    text = next(u["content"] for u in prometheus.inputs["uploads"] if u["file"].endswith("prometheus.yml"))
    assert f"metrics_path: {config.METRICS_PATH}" in text and f"backup:{config.METRICS_PORT}" in text
    rules = next(u["content"] for u in prometheus.inputs["uploads"] if u["file"].endswith("rules/ceres.yml"))
    assert "BackupTooOld" in rules


def test_switching_the_volume_edge_off_keeps_the_database_dumps(offline):
    run = offline("dev", integrations={"backup-volumes": False})
    assert not [p for p in mounts(run) if p.startswith(f"{config.ROOT}/volumes/")]
    edges = {r.name for r in run.resources if r.type == "ceres:integrations:BackupEdge"}
    assert edges == {"backup-postgres"}


def test_the_kept_services_are_real_services():
    from stacks.spec import SERVICE_NAMES
    assert set(KEPT_SERVICES) <= set(SERVICE_NAMES)


def test_without_databases_to_dump_no_password_file_is_expected(offline):
    run = offline("dev", integrations={"backup-postgres": False})
    uploads = {u["file"]: u["content"] for u in container(run).inputs["uploads"]}
    assert "/run/ceres/pgpass" not in uploads
    entry = uploads["/usr/local/bin/ceres-backup-entry"]
    # The entry must not copy a file that is not there: under `set -eu` the container would crash-loop.
    assert "pgpass" not in entry and subprocess.run(["sh", "-n"], input=entry, text=True).returncode == 0


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_restore_keeps_only_the_data_tier_and_the_backup_running(offline, stack):
    run = offline(stack)
    kept = set()
    for c in of_type(run, "Container"):
        labels = {label["label"]: label["value"] for label in c.inputs.get("labels", [])}
        if labels.get("io.ceres.restore") == "keep-running":
            kept.add(c.name)
    if stack == "dev":
        assert kept == {"postgres", "redis", "backup"}
    else:
        members = {f"{kind}-{host}" for kind in ("etcd", "patroni") for host in ("node1", "node2", "node3")}
        members |= {f"redis-{host}-{part}" for host in ("node1", "node2", "node3") for part in ("data", "sentinel")}
        members |= {f"{kind}-{host}" for kind in ("haproxy", "keepalived") for host in ("node1", "node2")}
        assert kept == members | {"backup"}
    labels = {label["label"]: label["value"] for label in container(run).inputs["labels"]}
    assert labels["io.ceres.postgres-image"] == "postgres:17.6-bookworm"
