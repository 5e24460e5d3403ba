"""Point-in-time recovery in the prod graph (issue 8): every Patroni member archives WAL into the
object store through pgBackRest and runs the agent that takes the scheduled backups; Prometheus
watches the agents; the keys stay secrets; and the edge goes away cleanly when switched off."""

from __future__ import annotations

import asyncio
import configparser
import json

import pulumi
import yaml

from components.config.pgbackrest import AGENT_PORT, CIPHER_PASS_ENV, S3_KEY_ENV, S3_KEY_SECRET_ENV
from tests.support import by_name, of_type

MEMBERS = ("patroni-node1", "patroni-node2", "patroni-node3")


def upload(container, path: str) -> str:
    return next(u["content"] for u in container.inputs["uploads"] if u["file"] == path)


def test_every_member_archives_into_the_stacks_own_prefix_of_the_bucket(offline):
    run = offline("prod")
    for name in MEMBERS:
        member = by_name(run, name, "Container")
        conf = configparser.ConfigParser()
        conf.read_string(upload(member, "/etc/pgbackrest/pgbackrest.conf"))
        assert dict(conf["global"]).items() >= {
            "repo1-type": "s3", "repo1-s3-bucket": "ceres-example-backups", "repo1-s3-endpoint": "s3.eu-central-1.amazonaws.com",
            "repo1-path": "/pgbackrest/ceres-prod", "repo1-retention-full": "2", "repo1-cipher-type": "aes-256-cbc"}.items()
        assert "ceres-prod" in conf.sections()
        patroni = yaml.safe_load(upload(member, "/etc/patroni/patroni.yml"))
        assert "--stanza=ceres-prod archive-push %p" in patroni["postgresql"]["parameters"]["archive_command"]
        assert "archive-get" in patroni["postgresql"]["recovery_conf"]["restore_command"]
        # It starts through the entry script (restore requests, the agent), which execs Patroni.
        assert member.inputs["entrypoints"] == ["sh"] and member.inputs["command"] == ["/usr/local/bin/ceres-member-entry"]
        entry = upload(member, "/usr/local/bin/ceres-member-entry")
        assert "exec /opt/patroni/bin/patroni /etc/patroni/patroni.yml" in entry
        # The agent's metrics on the member's own address, like Patroni's API (host network).
        address = patroni["restapi"]["connect_address"].split(":")[0]
        assert f"--listen={address}:{AGENT_PORT}" in entry
        assert "--full-every-hours=168" in entry and "--diff-every-hours=24" in entry


def test_the_passphrase_and_the_keys_reach_the_members_only_as_secrets(offline):
    run = offline("prod")
    for name in MEMBERS:
        member = by_name(run, name, "Container")
        plain = [e for e in member.inputs["envs"] if isinstance(e, str)]
        assert not any(e.startswith((CIPHER_PASS_ENV, S3_KEY_ENV, S3_KEY_SECRET_ENV)) for e in plain), plain
        assert member.inputs["envs"].count("[secret]") == 7  # Patroni's four passwords, the passphrase, both keys
        assert "offline-" not in json.dumps(member.inputs)
    password = run.outputs["archive_password"]
    assert isinstance(password, pulumi.Output) and asyncio.run(password.is_secret()) is True
    backup = by_name(run, "backup", "Container")
    assert "RESTIC_REPOSITORY=s3:https://s3.eu-central-1.amazonaws.com/ceres-example-backups/restic" in backup.inputs["envs"]
    # restic's keys: secret entries (the only ones in its environment), the region in plain text.
    assert backup.inputs["envs"].count("[secret]") == 2 and "AWS_DEFAULT_REGION=eu-central-1" in backup.inputs["envs"]
    assert not any(e.startswith(("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")) for e in backup.inputs["envs"])


def test_prometheus_watches_every_agent_and_alerts_on_old_backups_and_failing_archiving(offline):
    run = offline("prod")
    prometheus = by_name(run, "prometheus", "Container")
    jobs = {job["job_name"]: job for job in yaml.safe_load(upload(prometheus, "/etc/prometheus/prometheus.yml"))["scrape_configs"]}
    assert jobs["pgbackrest"]["static_configs"] == [{"targets": [f"10.0.0.1{n}:{AGENT_PORT}" for n in (1, 2, 3)]}]
    rules = {rule["alert"]: rule for group in yaml.safe_load(upload(prometheus, "/etc/prometheus/rules/ceres.yml"))["groups"]
             for rule in group["rules"]}
    assert {"PitrBackupTooOld", "PitrBackupMissing", "PitrRepositoryUnreachable", "WalArchivingFailing"} <= set(rules)
    # Twice the daily differential interval.
    assert rules["PitrBackupTooOld"]["expr"].endswith("> 172800")


def test_the_edge_scores_and_switching_it_off_leaves_plain_patroni(offline):
    full = offline("prod")
    statuses = {e["id"]: e for e in full.outputs["integration_matrix"]}
    assert statuses["backup-pitr"]["status"] == statuses["scrape-pgbackrest"]["status"] == "configured"
    dev = {e["id"]: e for e in offline("dev").outputs["integration_matrix"]}
    assert dev["backup-pitr"]["status"] == "not_applicable"

    run = offline("prod", integrations={"backup-pitr": False})
    member = by_name(run, "patroni-node1", "Container")
    assert member.inputs["entrypoints"] == ["/opt/patroni/bin/patroni"]
    assert not any(u["file"].startswith("/etc/pgbackrest") for u in member.inputs["uploads"])
    assert "archive_password" not in run.outputs
    statuses = {e["id"]: e for e in run.outputs["integration_matrix"]}
    assert statuses["backup-pitr"]["status"] == "missing" and "switched off" in statuses["backup-pitr"]["reason"]
    assert statuses["scrape-pgbackrest"]["status"] == "missing"
    # Both edges still wanted, no longer built: the score says so.
    before, after = full.outputs["integration_score"]["overall"], run.outputs["integration_score"]["overall"]
    assert after["want"] == before["want"] and after["have"] == before["have"] - 2


def test_without_an_object_store_the_edge_is_missing_and_says_what_to_set(offline):
    run = offline("prod", backup={"repository": "/srv/backups/ceres"})
    statuses = {e["id"]: e for e in run.outputs["integration_matrix"]}
    assert statuses["backup-pitr"]["status"] == "missing"
    assert "backup.object_store" in statuses["backup-pitr"]["reason"]
    assert not any(u["file"].startswith("/etc/pgbackrest") for u in by_name(run, "patroni-node1", "Container").inputs["uploads"])
