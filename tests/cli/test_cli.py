"""The `ceres` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli.main import main
from components.catalog import EDGES

ROOT = Path(__file__).resolve().parents[2]


def run_ceres(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The installed entry point, in a fresh interpreter, as from a shell."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_text_is_labelled_offline_and_shows_the_whole_plan(stack, capsys):
    assert main(["plan", "--stack", stack]) == 0
    out = capsys.readouterr().out
    assert f"CERES offline plan — stack {stack}" in out and "not a Pulumi preview" in out
    for section in ("Resources by component, in dependency order:", "Resources by type:", "Critical path", "Integration score:"):
        assert section in out
    assert "ceres:integrations:DatabaseEdge db-gitea" in out


def test_plan_json_has_the_documented_shape(capsys):
    assert main(["plan", "--stack", "dev", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert set(plan) == {"stack", "resources", "critical_path", "score"}
    urns = {r["urn"] for r in plan["resources"]}
    for resource in plan["resources"]:
        assert set(resource) == {"urn", "type", "name", "parent", "dependencies", "provider", "inputs"}
        assert set(resource["dependencies"]) <= urns
    # dependency order: everything a resource waits on comes before it
    position = {r["urn"]: i for i, r in enumerate(plan["resources"])}
    for resource in plan["resources"]:
        assert all(position[d] < position[resource["urn"]] for d in resource["dependencies"])
    assert set(plan["critical_path"]) <= urns and len(plan["critical_path"]) >= 3
    assert "offline-" not in json.dumps(plan), "a generated secret leaked into the plan"


def test_min_score_gates_the_exit_code(capsys):
    assert main(["plan", "--stack", "dev", "--min-score", "0"]) == 0
    assert main(["plan", "--stack", "dev", "--min-score", "99"]) == 1
    assert "below --min-score 99" in capsys.readouterr().err


def test_matrix_json_lists_every_seed_edge_with_a_status(capsys):
    assert main(["matrix", "--stack", "dev", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {e["id"] for e in report["edges"]} == {e.id for e in EDGES}
    for edge in report["edges"]:
        assert set(edge) == {"id", "layer", "source", "target", "mechanism", "status", "reason"}
        assert edge["status"] in {"configured", "missing", "not_applicable"}
    assert set(report["score"]) == {"overall", "layers"}
    assert set(report["score"]["overall"]) == {"have", "want", "percent"}


def test_render_writes_one_file_per_container_path(tmp_path, capsys):
    assert main(["render", "--stack", "dev", "--out", str(tmp_path)]) == 0
    conf = tmp_path / "postgres" / "etc" / "postgresql" / "postgresql.conf"
    assert conf.is_file() and "password_encryption = 'scram-sha-256'" in conf.read_text()
    assert (tmp_path / "postgres" / "etc" / "postgresql" / "pg_hba.conf").is_file()


BROKEN_STACK = textwrap.dedent("""\
    config:
      ceres:tier: prod
      ceres:domian: typo.example.com
      ceres:domain: https://ceres.example.com
      ceres:tls: {mode: acme, email: not-an-address}
      ceres:services:
        gitlab: {enabled: true}
        gitea: {image: "gitea/gitea:latest"}
        redis: {image: redis}
      ceres:hosts:
        - {name: node1, url: "tcp://10.0.0.1:2375", roles: [apps]}
        - {name: node1, url: "ssh://deploy@node2", roles: [database]}
      ceres:ha: {etcd_members: two}
      ceres:chat: {channels: {alerts: "Alerts Room"}}
      ceres:backup: {schedule: daily, repository: /srv/restic}
      ceres:smtp: {host: smtp.example.com, port: 70000, from_address: ceres@example.com}
      ceres:smtp_password: plain-text-password
""")


def test_a_broken_stack_file_fails_with_one_message_per_problem_and_no_traceback(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: ceres\nruntime: python\n")
    (tmp_path / "Pulumi.broken.yaml").write_text(BROKEN_STACK)
    result = run_ceres("plan", "--stack", "broken", "--project", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "plain-text-password" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("ceres:") and ": received " in line]
    keys = {line.split(": received ")[0] for line in problems}
    assert keys >= {"ceres:domian", "ceres:smtp_password"}
    # the first pass stops at unknown keys and plain secrets; fix them and every value problem shows
    fixed = BROKEN_STACK.replace("  ceres:domian: typo.example.com\n", "").replace("  ceres:smtp_password: plain-text-password\n", "")
    (tmp_path / "Pulumi.broken.yaml").write_text(fixed)
    result = run_ceres("plan", "--stack", "broken", "--project", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    keys = {line.split(": received ")[0] for line in result.stderr.splitlines() if ": received " in line}
    assert len(keys) >= 10, result.stderr
    assert {"ceres:domain", "ceres:tls.email", "ceres:services.gitlab", "ceres:services.gitea.image", "ceres:hosts[0].url",
            "ceres:hosts[1].roles[0]", "ceres:ha.etcd_members", "ceres:chat.channels.alerts", "ceres:backup.schedule", "ceres:smtp.port"} <= keys


def test_a_missing_or_unreadable_stack_file_is_a_clear_error(tmp_path):
    result = run_ceres("plan", "--stack", "staging", "--project", str(tmp_path))
    assert result.returncode == 2 and "no stack file Pulumi.staging.yaml" in result.stderr
    (tmp_path / "Pulumi.bad.yaml").write_text("config: [unclosed\n")
    result = run_ceres("plan", "--stack", "bad", "--project", str(tmp_path))
    assert result.returncode == 2 and "not valid YAML" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("fmt, marker", [("text", "CERES integration matrix — stack prod"), ("html", "<!DOCTYPE html>"), ("mermaid", "graph LR")])
def test_matrix_formats_from_the_command_line(fmt, marker, capsys):
    assert main(["matrix", "--stack", "prod", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert out.startswith(marker) or marker in out.splitlines()[0]
    assert "db-gitea" in out
