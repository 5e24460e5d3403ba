"""`ceres restore-pitr` (cli/restore_pitr.py) against a stub `docker` that plays the prod stack of
Pulumi.prod.yaml (node1: apps + HA, node2, node3: HA): which host each call goes to (DOCKER_HOST),
the order of the steps, that nothing is stopped when the target check fails, and that the apps
start again when a later step fails.

The stub keeps the containers' state in a JSON file: a member started with a non-empty `restore-to`
request comes up as the primary, one with `reinitialise` as a streaming replica (the entry script's
side runs for real in tests/components/config/test_pitr_restore_real.py). The subcommand is built
with `add_parser` on a parser of its own, as cli/main.py does.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from cli import restore_pitr
from tests.components.config.stubs import python_stub

ROOT = Path(__file__).resolve().parents[2]
NODE = {n: f"ssh://deploy@{n}.ceres.example.com" for n in ("node1", "node2", "node3")}
MEMBERS = {n: f"ceres-prod-patroni-{n}" for n in NODE}
AGENT_FAILURE = "no backup reaches 2020-01-01T00:00:00+00:00: the earliest restorable moment is 2026-11-20T03:00:00+00:00"

STUB = r'''
import json, os, sys
stub = os.environ["STUB_DIR"]
args = sys.argv[1:]
state_path = os.path.join(stub, "state.json")
state = json.load(open(state_path))
call = {"host": os.environ.get("DOCKER_HOST", ""), "argv": args}

def save():
    json.dump(state, open(state_path, "w"))

def record():
    with open(os.path.join(stub, "calls.jsonl"), "a") as log:
        log.write(json.dumps(call) + "\n")

def container(name):
    c = state["containers"].get(name)
    if c is None or c["host"] != call["host"]:
        print(f"Error: No such container: {name}", file=sys.stderr); record(); sys.exit(1)
    return c

verb = args[0]
if verb == "cp":
    name, path = args[2].split(":", 1)
    c = container(name)
    call["content"] = open(args[1]).read()
    c["requests"][os.path.basename(path)] = call["content"]
elif verb == "inspect":
    c = container(args[-1])
    print(f"{'true' if c['running'] else 'false'} {c['restarts']}")
elif verb == "ps":
    print(state["ps"].get(call["host"], ""), end="")
elif verb in ("stop", "start"):
    for name in [a for a in args[1:] if not a.startswith("-") and not a.isdigit()]:
        c = container(name)
        if verb == "stop":
            c["running"] = False
        elif name == os.environ.get("STUB_FAIL_START"):
            c["restarts"] += 1  # the entry script failed: exited, restarted by the policy
        else:
            c["running"] = True
            if c["requests"].get("restore-to"):
                c["role"] = "leader"
            elif "reinitialise" in c["requests"]:
                c["role"] = "replica"
            c["requests"] = {}
elif verb == "logs":
    print("ceres-restore: FAILED: pgbackrest restore failed (its message is above)")
elif verb == "exec":
    rest = [a for a in args[1:]]
    if rest[0] == "-u":
        rest = rest[2:]
    c = container(rest[0])
    command = rest[1:]
    if not c["running"]:
        print(f"Error: container {rest[0]} is not running", file=sys.stderr); record(); sys.exit(1)
    if command[0] == "psql":
        sql = command[-1]
        if "pg_stat_wal_receiver" in sql:
            print("t" if c["role"] == "replica" else "f")
        else:
            print("f" if c["role"] == "leader" else "t")
    elif command[0] == "python3":
        code = int(os.environ.get("STUB_CHECK_RC", "0"))
        if code:
            print(os.environ["STUB_CHECK_MESSAGE"], file=sys.stderr)
        else:
            print("backup 20261126-030000F reaches it")
        record(); sys.exit(code)
    elif command[0] == "sh" and "check" in command:
        code = int(os.environ.get("STUB_SEAL_RC", "0"))
        if code:
            print("ERROR: [082]: WAL segment 000000010000000000000042 was not archived before the 60000ms timeout", file=sys.stderr)
        record(); sys.exit(code)
    elif "etcdctl" in command[0]:
        print("7")
record()
save()
'''


def containers() -> dict:
    members = {MEMBERS[n]: {"host": NODE[n], "running": True, "restarts": 0, "role": "leader" if n == "node1" else "replica",
                            "requests": {}} for n in NODE}
    etcd = {f"ceres-prod-etcd-{n}": {"host": NODE[n], "running": True, "restarts": 0, "role": "", "requests": {}} for n in NODE}
    apps = {f"ceres-prod-{n}": {"host": NODE["node1"], "running": True, "restarts": 0, "role": "", "requests": {}}
            for n in ("gitea", "nextcloud", "caddy")}
    return {**members, **etcd, **apps}


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    python_stub(tmp_path, "docker", STUB)
    shutil.copy(ROOT / "Pulumi.prod.yaml", tmp_path / "Pulumi.prod.yaml")
    ps = "".join(f"ceres-prod-{name}\t\n" for name in ("gitea", "nextcloud", "caddy")) + \
        "".join(f"ceres-prod-{name}\tkeep-running\n" for name in ("patroni-node1", "etcd-node1", "haproxy-node1", "backup"))
    (tmp_path / "state.json").write_text(json.dumps({"containers": containers(), "ps": {NODE["node1"]: ps}}))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("STUB_DIR", str(tmp_path))
    monkeypatch.setenv("STUB_CHECK_MESSAGE", AGENT_FAILURE)
    return tmp_path


def ceres(stub: Path, *args: str) -> int:
    parser = argparse.ArgumentParser(prog="ceres")
    restore_pitr.add_parser(parser.add_subparsers(dest="command", required=True))
    return restore_pitr.run(parser.parse_args(["restore-pitr", "--stack", "prod", "--project", str(stub), *args]))


def calls(stub: Path) -> list[dict]:
    path = stub / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def changing(made: list[dict]) -> list[dict]:
    """The calls that change something (not inspect/ps/logs/read-only exec)."""
    return [c for c in made if c["argv"][0] in ("stop", "start", "cp") or
            (c["argv"][0] == "exec" and ("etcdctl" in " ".join(c["argv"]) or "check" in c["argv"] or "rm" in c["argv"]))]


def brief(call: dict) -> str:
    argv = call["argv"]
    host = call["host"].split("@")[1].split(".")[0]
    if argv[0] == "cp":
        return f"{host} cp {argv[2].rsplit('/', 1)[1]}={call['content'].strip()!r} {argv[2].split(':')[0]}"
    if argv[0] == "exec":
        what = "etcd-del" if "etcdctl" in " ".join(argv) else "seal" if "check" in argv else "rm-requests"
        return f"{host} {what} {next(a for a in argv[1:] if a.startswith('ceres-'))}"
    return f"{host} {' '.join(a for a in argv if not a.startswith('-') and not a.isdigit())}"


START = "2026-11-26 10:00:00+00:00"
TARGET = "2026-11-26T10:00:00+00:00"


def test_restores_one_member_and_reclones_the_others_in_order_on_each_host(stub, capsys):
    assert ceres(stub, "--to", START, "--member", "node2") == 0
    made = calls(stub)
    check = next(i for i, c in enumerate(made) if "check-target" in c["argv"])
    assert made[check]["host"] == NODE["node1"], "checked on the running leader"
    assert made[check]["argv"][-6:] == ["--pgbackrest-config", "/etc/pgbackrest/pgbackrest.conf", "--stanza", "ceres-prod",
                                        "--target", TARGET]
    assert all(i > check for i, c in enumerate(made) if c in changing(made)), "something changed before the check"
    assert [brief(c) for c in changing(made)] == [
        "node1 stop ceres-prod-gitea ceres-prod-nextcloud ceres-prod-caddy",
        # with the apps stopped, a last commit and WAL up to it archived, on the leader
        "node1 seal ceres-prod-patroni-node1",
        # replicas first, the leader last; stale requests removed while each still runs
        "node2 rm-requests ceres-prod-patroni-node2", "node2 stop ceres-prod-patroni-node2",
        "node3 rm-requests ceres-prod-patroni-node3", "node3 stop ceres-prod-patroni-node3",
        "node1 rm-requests ceres-prod-patroni-node1", "node1 stop ceres-prod-patroni-node1",
        "node1 etcd-del ceres-prod-etcd-node1",
        f"node2 cp restore-to={TARGET!r} ceres-prod-patroni-node2", "node2 start ceres-prod-patroni-node2",
        "node1 cp restore-to='' ceres-prod-patroni-node1", "node1 cp reinitialise='' ceres-prod-patroni-node1",
        "node1 start ceres-prod-patroni-node1",
        "node3 cp restore-to='' ceres-prod-patroni-node3", "node3 cp reinitialise='' ceres-prod-patroni-node3",
        "node3 start ceres-prod-patroni-node3",
        "node1 start ceres-prod-gitea ceres-prod-nextcloud ceres-prod-caddy",
    ]
    etcd = next(c for c in made if "etcdctl" in " ".join(c["argv"]))
    assert etcd["argv"][-3:] == ["del", "--prefix", "/service/ceres-prod/"]
    cp = next(c for c in made if c["argv"][0] == "cp")
    assert cp["argv"][2] == "ceres-prod-patroni-node2:/var/lib/postgresql/data/ceres-restore/restore-to"
    seal = next(c for c in made if "check" in c["argv"])
    assert seal["argv"][1:3] == ["-u", "postgres"] and "select txid_current()" in " ".join(seal["argv"])
    assert seal["argv"][-4:] == ["pgbackrest", "--config=/etc/pgbackrest/pgbackrest.conf", "--stanza=ceres-prod", "check"]
    out = capsys.readouterr()
    assert f"ceres-prod-patroni-node2 restored to {TARGET} and leads the cluster" in out.out
    assert "ceres-prod-patroni-node2's agent takes a full backup on the new timeline" in out.out
    assert "started 3 app containers again" in out.out


def test_the_leader_restores_when_no_member_is_named(stub):
    assert ceres(stub, "--to", START) == 0
    restore_request = next(c for c in calls(stub) if c["argv"][0] == "cp")
    assert restore_request["host"] == NODE["node1"] and restore_request["content"] == TARGET + "\n"


def test_nothing_is_stopped_when_no_backup_reaches_the_target(stub, monkeypatch, capsys):
    monkeypatch.setenv("STUB_CHECK_RC", "2")
    assert ceres(stub, "--to", "2020-01-01 00:00:00+00:00") == 2
    assert changing(calls(stub)) == []
    err = capsys.readouterr().err
    assert AGENT_FAILURE in err and "nothing was stopped or changed" in err


def test_a_failed_restore_stops_that_member_leaves_the_others_down_and_starts_the_apps_again(stub, monkeypatch, capsys):
    monkeypatch.setenv("STUB_FAIL_START", MEMBERS["node1"])
    assert ceres(stub, "--to", START) == 1
    done = [brief(c) for c in changing(calls(stub))]
    assert done[-2:] == ["node1 stop ceres-prod-patroni-node1",  # no restart loop of a failing restore
                         "node1 start ceres-prod-gitea ceres-prod-nextcloud ceres-prod-caddy"]
    assert not any("start ceres-prod-patroni-node2" in d or "start ceres-prod-patroni-node3" in d for d in done)
    err = capsys.readouterr().err
    assert "FAILED: ceres-prod-patroni-node1 exited before it was the primary" in err
    assert "ceres-restore: FAILED: pgbackrest restore failed" in err, "the member's own log lines are shown"
    # What to do next, as the members are down and etcd cleared.
    assert "start a member that was not restored" in err and "/var/lib/postgresql/data/ceres-restore/reinitialise" in err


def test_an_archive_that_cannot_be_sealed_stops_no_member_and_starts_the_apps_again(stub, monkeypatch, capsys):
    monkeypatch.setenv("STUB_SEAL_RC", "1")
    assert ceres(stub, "--to", START) == 1
    assert [brief(c) for c in changing(calls(stub))] == [
        "node1 stop ceres-prod-gitea ceres-prod-nextcloud ceres-prod-caddy",
        "node1 seal ceres-prod-patroni-node1",
        "node1 start ceres-prod-gitea ceres-prod-nextcloud ceres-prod-caddy",
    ]
    err = capsys.readouterr().err
    assert "could not seal the archive" in err and "was not archived" in err and "the members were not stopped" in err


def test_refuses_when_no_member_runs(stub, capsys):
    state = json.loads((stub / "state.json").read_text())
    for name in MEMBERS.values():
        state["containers"][name]["running"] = False
    (stub / "state.json").write_text(json.dumps(state))
    assert ceres(stub, "--to", START) == 2
    assert changing(calls(stub)) == []
    assert "no Patroni member is running" in capsys.readouterr().err


def test_refuses_an_unknown_member_and_a_moment_without_offset(stub, capsys):
    assert ceres(stub, "--to", START, "--member", "node9") == 2
    assert "--member node9: not a Patroni member of stack prod (members: node1, node2, node3)" in capsys.readouterr().err
    assert changing(calls(stub)) == []
    with pytest.raises(SystemExit):
        ceres(stub, "--to", "2026-11-26 10:00:00")
    assert "has no offset" in capsys.readouterr().err


def test_refuses_a_stack_without_the_ha_tier(stub, capsys):
    shutil.copy(ROOT / "Pulumi.dev.yaml", stub / "Pulumi.dev.yaml")
    parser = argparse.ArgumentParser(prog="ceres")
    restore_pitr.add_parser(parser.add_subparsers(dest="command", required=True))
    assert restore_pitr.run(parser.parse_args(["restore-pitr", "--stack", "dev", "--project", str(stub), "--to", START])) == 2
    assert "runs no Patroni cluster" in capsys.readouterr().err
    assert calls(stub) == []


def test_the_layout_names_the_containers_the_program_deploys(offline):
    """The command works out container names and hosts from the stack file alone: they must be
    the ones `pulumi up` gives the members and etcd (the same rule in two places)."""
    layout = restore_pitr.layout_from_stack("prod", None)
    deployed = {r.inputs["name"]: r for r in offline("prod").resources if r.type.endswith("Container")}
    hosts = {f"node{n}": f"ssh://deploy@node{n}.ceres.example.com" for n in (1, 2, 3)}
    for container in (*layout.members, *layout.etcd):
        assert container.name in deployed, f"{container.name} is not a container of the prod stack"
        assert container.docker_host == hosts[container.host]
        assert container.name.endswith(f"-{container.host}")
    assert layout.scope == "ceres-prod" and layout.apps_docker_host == hosts["node1"]
