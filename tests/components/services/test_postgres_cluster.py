"""The PostgreSQL HA cluster across the prod HA hosts: etcd + Patroni members, each on its own host,
and every consumer's role made on whichever member leads."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from cli.offline import SECRET_MARK, OfflineEngine, OfflineRun
from components.config import patroni
from components.config import postgres as pg_config
from components.docker_host import PROBE, DockerHostComponent
from components.services.postgres_cluster import MemberContainer, PostgresCluster, patroni_dockerfile, psql_on_leader
from stacks.load import load_spec
from tests.conftest import stack_config
from tests.support import assert_no_plain_secrets, by_name, of_type, unwrap

CONSUMERS = ("gitea", "keycloak")
HOSTS = {"node1": "10.0.0.11", "node2": "10.0.0.12", "node3": "10.0.0.13"}
STEPS = ["postgres-gitea-database", "postgres-keycloak-database", "postgres-monitoring-role", "postgres-backup-role"]


def build_cluster(monitoring: bool = True, backup: bool = True) -> tuple[OfflineRun, dict]:
    """The prod spec, one DockerHostComponent per host (as the composition makes them), and the
    cluster on the HA hosts, under the recording engine."""
    config, secret_keys = stack_config("prod")
    made: dict = {}

    def program() -> dict:
        spec = load_spec("prod", config, set(secret_keys))
        hosts = {host.name: DockerHostComponent(host, "ceres-prod") for host in spec.hosts}
        made["spec"] = spec
        made["cluster"] = PostgresCluster(spec, [hosts[h.name] for h in spec.hosts_with("ha")], CONSUMERS,
                                          monitoring=monitoring, backup=backup)
        return {}

    engine = OfflineEngine("prod", config, secret_keys)
    engine.run(program)
    return OfflineRun("prod", engine.monitor.recorded, {}), made


@pytest.fixture(scope="module")
def built():
    return build_cluster()


@pytest.fixture(scope="module")
def run(built):
    return built[0]


def provider_of(run: OfflineRun, host: str) -> str:
    return by_name(run, f"{host}-docker", "pulumi:providers:docker").urn


def uploads(container) -> dict[str, str]:
    return {u["file"]: u["content"] for u in container.inputs["uploads"]}


def test_the_cluster_is_one_postgres_service_with_a_member_per_host(run):
    cluster = by_name(run, "postgres", "ceres:services:PostgresCluster")
    for host in HOSTS:
        member = by_name(run, f"postgres-{host}", "ceres:services:PostgresMember")
        assert member.parent == cluster.urn
        for name, kind in [(f"etcd-{host}", "Container"), (f"patroni-{host}", "Container"),
                           (f"etcd-{host}-image", "RemoteImage"), (f"patroni-{host}-image", "Image"),
                           (f"etcd-{host}-data", "Volume"), (f"patroni-{host}-data", "Volume")]:
            resource = by_name(run, name, kind)
            assert resource.parent == member.urn
            assert resource.provider == provider_of(run, host), f"{name} must deploy to {host}"


def test_members_use_host_networking_and_publish_nothing(run):
    for container in of_type(run, ":Container"):
        if container.name.startswith(("etcd-", "patroni-")):
            assert container.inputs["networkMode"] == "host"
            assert not container.inputs.get("networksAdvanced")
            assert not container.inputs["ports"]
            assert container.inputs["restart"] == "unless-stopped" and container.inputs["wait"] is True


def test_images_are_the_pinned_etcd_and_patroni_built_on_each_host_from_the_pinned_postgres(built):
    run, made = built
    spec = made["spec"]
    dockerfile = patroni_dockerfile(spec.services.postgres.image, spec.ha.images.patroni)
    assert dockerfile.startswith(f"FROM {spec.services.postgres.image}\n")
    assert f"'patroni[etcd3,psycopg3]=={spec.ha.images.patroni}'" in dockerfile
    for host in HOSTS:
        assert by_name(run, f"etcd-{host}-image", "RemoteImage").inputs["name"] == spec.ha.images.etcd
        image = by_name(run, f"patroni-{host}-image", "Image")
        assert image.inputs["imageName"].startswith("ceres-prod-patroni:")
        assert image.inputs["skipPush"] is True
        patroni_container = by_name(run, f"patroni-{host}", "Container")
        assert patroni_container.inputs["image"] == image.inputs["imageName"]
        assert patroni_container.inputs["memory"] == spec.services.postgres.memory_mb
        assert patroni_container.inputs["user"] == "postgres"
        assert patroni_container.inputs["entrypoints"] == ["/opt/patroni/bin/patroni"]
        assert patroni_container.inputs["command"] == ["/etc/patroni/patroni.yml"]


@pytest.mark.parametrize("installed, builds", [
    ("pgBackRest 2.45", False), ("pgBackRest 2.52", True), ("pgBackRest 2.57.0", True), ("", False)])
def test_the_image_refuses_a_pgbackrest_older_than_postgresql_17(installed: str, builds: bool) -> None:
    """The Dockerfile's check, run by the real awk with what `pgbackrest version` could print
    (nothing: pgbackrest missing)."""
    line = next(l for l in patroni_dockerfile("postgres:17.6-bookworm", "4.0.7").splitlines() if "pgbackrest version" in l)
    program = line.split("'", 1)[1].rsplit("'", 1)[0]
    result = subprocess.run(["awk", "-v", f"installed={installed}", program], capture_output=True, text=True, timeout=10)
    assert (result.returncode == 0) is builds, result.stdout
    if not builds:
        assert "predates PostgreSQL 17" in result.stdout


def test_healthchecks_are_what_the_images_can_run(run):
    for host, address in HOSTS.items():
        etcd = by_name(run, f"etcd-{host}", "Container")
        # distroless: no shell, but etcdctl ships beside etcd (which also listens on loopback for it)
        assert etcd.inputs["healthcheck"]["tests"] == ["CMD", "/usr/local/bin/etcdctl", "endpoint", "health"]
        assert "http://127.0.0.1:2379" in next(a for a in etcd.inputs["command"] if a.startswith("--listen-client-urls="))
        member = by_name(run, f"patroni-{host}", "Container")
        # The REST API listens only on the member's own address.
        # Ready (what the next member waits for): it leads, or replicates within the failover lag.
        assert member.inputs["healthcheck"]["tests"] == ["CMD-SHELL", (
            f"{PROBE} wget -q -O /dev/null http://{address}:8008/primary || "
            f"{PROBE} wget -q -O /dev/null 'http://{address}:8008/replica?lag=1048576'")]
        assert "/ceres-probe" in [v["containerPath"] for v in member.inputs["volumes"]]


def test_every_secret_reaches_patroni_only_as_a_secret_and_is_the_same_on_every_member(run):
    assert_no_plain_secrets(run)
    opened = []
    for host in HOSTS:
        member = by_name(run, f"patroni-{host}", "Container")
        assert member.inputs["envs"] == [SECRET_MARK, SECRET_MARK, SECRET_MARK, "PATRONI_RESTAPI_USERNAME=patroni", SECRET_MARK]
        envs = unwrap(member.state["envs"])
        assert [e.split("=", 1)[0] for e in envs] == list(patroni.SECRET_ENVIRONMENT)
        opened.append(envs)
    assert opened[0] == opened[1] == opened[2]
    assert all(value.split("=", 1)[1].startswith("offline-") for value in opened[0] if "PASSWORD" in value)


def test_each_patroni_yml_is_the_renderers_and_names_all_etcd_members_and_its_own_address(built):
    run, made = built
    etcd_hosts = [f"{address}:2379" for address in HOSTS.values()]
    for host, address in HOSTS.items():
        text = uploads(by_name(run, f"patroni-{host}", "Container"))["/etc/patroni/patroni.yml"]
        settings = patroni.PatroniSettings(
            scope="ceres-prod",
            member=patroni.PatroniMember(host, patroni.Address(address, 5432), patroni.Address(address, 8008)),
            etcd=tuple(patroni.Address(a, 2379) for a in HOSTS.values()),
            memory_mb=made["spec"].services.postgres.memory_mb, consumers=CONSUMERS, monitoring=True, backup=True,
            synchronous_mode=made["spec"].ha.synchronous_mode, bin_dir="/usr/lib/postgresql/17/bin",
        )
        assert text == patroni.patroni_yml(settings)
        parsed = yaml.safe_load(text)
        assert parsed["scope"] == "ceres-prod" and parsed["name"] == host
        assert parsed["etcd3"]["hosts"] == etcd_hosts
        assert parsed["restapi"]["connect_address"] == f"{address}:8008"
        assert parsed["postgresql"]["connect_address"] == f"{address}:5432"


def test_each_etcd_member_runs_the_renderers_flags_for_the_whole_cluster(run):
    cluster = tuple(patroni.EtcdMember(host, address) for host, address in HOSTS.items())
    for host in HOSTS:
        etcd = by_name(run, f"etcd-{host}", "Container")
        settings = patroni.EtcdSettings(cluster=cluster, member=host, cluster_token="ceres-prod-etcd")
        assert etcd.inputs["command"] == ["/usr/local/bin/etcd", *patroni.etcd_args(settings)]
        assert etcd.inputs["volumes"][0]["containerPath"] == "/var/lib/etcd"


def test_patroni_waits_for_every_etcd_member_and_provisioning_for_every_patroni_member(run):
    etcd = {by_name(run, f"etcd-{host}", "Container").urn for host in HOSTS}
    members = {by_name(run, f"patroni-{host}", "Container").urn for host in HOSTS}
    for host in HOSTS:
        assert etcd <= set(by_name(run, f"patroni-{host}", "Container").dependencies)
    for step in STEPS:
        assert members <= set(by_name(run, step, "Command").dependencies)


def test_members_follow_one_another_so_a_shared_change_replaces_one_at_a_time(run):
    """Pulumi registers a resource only once everything it depends on is done (its URN resolves
    when the engine finishes the step): member n+1 is created, or replaced, only after member n
    is ready again. Only depends_on, no input of the previous member: so replacing one (delete
    before replace) never cascades into replacing the next."""
    members = [by_name(run, f"patroni-{host}", "Container") for host in HOSTS]
    for previous, member in zip(members, members[1:]):
        assert previous.urn in member.dependencies
        assert all(previous.urn not in deps for deps in member.property_dependencies.values())
    assert not any(m.urn in members[0].dependencies for m in members[1:])
    for member in members:
        # Stopped as PostgreSQL needs (a checkpoint, the leader key handed over), never force-removed.
        assert member.inputs["destroyGraceSeconds"] == pg_config.STOP_GRACE_SECONDS


def test_provisioning_tries_every_member_and_never_carries_a_password(run):
    for step, sql in zip(STEPS, [pg_config.provision_sql("gitea"), pg_config.provision_sql("keycloak"),
                                 pg_config.monitoring_sql(), pg_config.backup_role_sql()]):
        provisioning = by_name(run, step, "Command")
        create = provisioning.inputs["create"]
        for host in HOSTS:
            assert f"ceres-prod-patroni-{host}" in create and f"ssh://deploy@{host}.ceres.example.com" in create
        assert provisioning.inputs["stdin"] == sql
        assert provisioning.inputs["environment"] == {"CERES_ROLE_PASSWORD": SECRET_MARK}
        assert "offline-" not in create + provisioning.inputs["delete"] and SECRET_MARK not in create


def test_apps_get_their_database_through_haproxy_on_the_virtual_ip(built):
    run, made = built
    cluster: PostgresCluster = made["cluster"]
    gitea = cluster.database("gitea")
    assert (gitea.host, gitea.port, gitea.name, gitea.user) == ("10.0.0.100", 5000, "gitea", "gitea")
    assert cluster.host_name == "10.0.0.100"
    assert cluster.consumer_databases == list(CONSUMERS)
    assert (cluster.monitoring_login().user, cluster.monitoring_login().name) == ("ceres_monitor", "postgres")
    assert cluster.backup_login().user == "ceres_backup"
    with pytest.raises(KeyError, match="consumers are"):
        cluster.database("nextcloud")


def test_prometheus_targets_and_haproxy_members_are_the_hosts_addresses(built):
    run, made = built
    cluster: PostgresCluster = made["cluster"]
    assert cluster.metrics_targets == [f"{a}:8008" for a in HOSTS.values()]
    assert cluster.members == list(HOSTS.items())
    edge = by_name(run, "ha-postgres", "HaEdge")
    assert edge.parent == by_name(run, "postgres", "ceres:services:PostgresCluster").urn
    assert made["cluster"].edges[0].members == [f"{a}:5432" for a in HOSTS.values()]


def test_without_monitoring_or_backup_there_is_no_such_role():
    run, made = build_cluster(monitoring=False, backup=False)
    assert {r.name for r in of_type(run, "Command")} == set(STEPS[:2])
    with pytest.raises(KeyError, match="monitoring=True"):
        made["cluster"].monitoring_login()
    with pytest.raises(KeyError, match="backup=True"):
        made["cluster"].backup_login()


# --- the leader-finding shell, run for real against a stub `docker` ----------------------------

STUB_DOCKER = r"""#!/bin/sh
# Records each call; answers `select pg_is_in_recovery()` from $STATE/<container> (t, f or down),
# and for the script run keeps its stdin and whether the password variable was passed by name.
state="$STATE"
echo "DOCKER_HOST=$DOCKER_HOST $*" >> "$state/calls"
name=""
for arg; do case "$arg" in ceres-*) name="$arg";; esac; done
case "$*" in
  *pg_is_in_recovery*)
    role=$(cat "$state/$name")
    [ "$role" = down ] && { echo "cannot connect" >&2; exit 1; }
    echo "$role";;
  *)
    cat > "$state/stdin-$name"
    [ -n "${CERES_ROLE_PASSWORD:-}" ] && echo "$CERES_ROLE_PASSWORD" > "$state/password-$name"
    echo "ran on $name";;
esac
"""

MEMBERS = [MemberContainer(f"ssh://deploy@{host}", f"ceres-prod-patroni-{host}") for host in HOSTS]


@pytest.fixture
def stub(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(STUB_DOCKER)
    docker.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(tmp_path)}


def run_shell(script: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], input=stdin, env=env, capture_output=True, text=True, timeout=30)


def roles(state: str, *answers: str) -> None:
    for member, answer in zip(MEMBERS, answers):
        Path(state, member.container).write_text(answer)


def test_the_leader_script_is_valid_sh():
    script = psql_on_leader(MEMBERS, env=("CERES_ROLE_PASSWORD",))
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True, timeout=10).returncode == 0


def test_the_script_runs_on_the_leader_only_and_passes_the_password_by_name(stub):
    roles(stub["STATE"], "down", "f", "t")
    result = run_shell(psql_on_leader(MEMBERS, env=("CERES_ROLE_PASSWORD",)),
                       {**stub, "CERES_ROLE_PASSWORD": "s3cret-value"}, stdin="SELECT 1;\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran on ceres-prod-patroni-node2"
    state = Path(stub["STATE"])
    assert (state / "stdin-ceres-prod-patroni-node2").read_text() == "SELECT 1;\n"
    assert (state / "password-ceres-prod-patroni-node2").read_text().strip() == "s3cret-value"
    calls = (state / "calls").read_text().splitlines()
    assert calls[-1] == ("DOCKER_HOST=ssh://deploy@node2 exec -i -u postgres -e CERES_ROLE_PASSWORD "
                         "ceres-prod-patroni-node2 psql -q -d postgres")
    assert "s3cret-value" not in "".join(calls)
    assert not (state / "stdin-ceres-prod-patroni-node3").exists()


def test_fails_naming_every_member_it_tried_when_none_leads(stub):
    roles(stub["STATE"], "down", "t", "t")
    result = run_shell(psql_on_leader(MEMBERS), stub, stdin="SELECT 1;\n")
    assert result.returncode == 1
    assert "no PostgreSQL member answered as the Patroni leader" in result.stderr
    for member in MEMBERS:
        assert f"{member.container} on {member.docker_host}" in result.stderr
    tried = [line.split()[0] for line in Path(stub["STATE"], "calls").read_text().splitlines()]
    assert tried == [f"DOCKER_HOST={m.docker_host}" for m in MEMBERS]


def test_the_retire_step_pipes_its_sql_to_the_leader(built, stub):
    run, _ = built
    delete = by_name(run, "postgres-gitea-database", "Command").inputs["delete"]
    # The recorded step names the real hosts; point them at the stub's answers.
    for host in HOSTS:
        Path(stub["STATE"], f"ceres-prod-patroni-{host}").write_text("f" if host == "node3" else "t")
    result = run_shell(delete, stub)
    assert result.returncode == 0, result.stderr
    assert Path(stub["STATE"], "stdin-ceres-prod-patroni-node3").read_text() == pg_config.retire_sql("gitea")


def test_members_listen_on_their_own_address_and_loopback_never_every_interface(run):
    for host, address in HOSTS.items():
        config = yaml.safe_load(uploads(by_name(run, f"patroni-{host}", "Container"))["/etc/patroni/patroni.yml"])
        assert config["restapi"]["listen"] == f"{address}:8008"
        assert config["postgresql"]["listen"] == f"{address},127.0.0.1:5432"
        etcd = by_name(run, f"etcd-{host}", "Container").inputs["command"]
        assert f"--listen-peer-urls=http://{address}:2380" in etcd
        assert not [arg for arg in etcd if "0.0.0.0" in arg]
