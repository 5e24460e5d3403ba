"""The Redis HA cluster, built on the prod stack's three HA hosts under the recording engine."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

import pulumi
import pulumi_docker as docker
import pytest

from cli.offline import SECRET_MARK, OfflineEngine, OfflineRun
from components.base import Service
from components.config import haproxy_redis, redis as config, redis_sentinel as ha
from components.config.redis_cluster import LIVE_FILE
from components.docker_host import DockerHostComponent
from components.integrations.cache import CacheEdge
from components.services.redis_cluster import SENTINEL_MEMORY_MB, RedisCluster
from stacks.load import load_spec
from tests.conftest import stack_config
from tests.support import assert_no_plain_secrets, by_name, of_type, unwrap

CONSUMERS = ("gitea", "nextcloud")
HOSTS = {"node1": "10.0.0.11", "node2": "10.0.0.12", "node3": "10.0.0.13"}
IMAGE = "redis:7.4.6-bookworm"
VIP = "10.0.0.100"


def build(monitoring: bool = True, ha_hosts: int = 3, **settings) -> tuple[OfflineRun, dict]:
    """The cluster over one DockerHostComponent per HA host, a cache edge for each consumer, and a
    stand-in Gitea container given the Sentinel URL (so the test can read what it resolves to)."""
    config_, secret_keys = stack_config("prod", **settings)
    made: dict = {}

    def program() -> dict:
        spec = load_spec("prod", config_, set(secret_keys))
        hosts = [DockerHostComponent(host, "ceres-prod") for host in spec.hosts_with("ha")[:ha_hosts]]
        made["hosts"] = hosts
        redis = made["redis"] = RedisCluster(spec, hosts, CONSUMERS, monitoring=monitoring)
        for consumer in CONSUMERS:
            made[consumer] = CacheEdge(Service(consumer, hosts[0].placed()), redis)
        docker.Container("gitea-stand-in", image="gitea", envs=[pulumi.Output.concat("URL=", redis.consumer_url("gitea"))],
                         opts=pulumi.ResourceOptions(parent=made["gitea"].source))
        return {}

    engine = OfflineEngine("prod", config_, secret_keys)
    engine.run(program)
    return OfflineRun("prod", engine.monitor.recorded, {}), made


@pytest.fixture(scope="module")
def built() -> tuple[OfflineRun, dict]:
    return build()


def containers(run: OfflineRun) -> dict[str, object]:
    return {r.name: r for r in of_type(run, "docker:index/container:Container") if r.name.startswith("redis-")}


def deploys_to(resource, provider_urn: str) -> bool:
    """The resource uses that provider (a provider reference is its URN, then `::` and its id)."""
    return resource.provider == provider_urn or resource.provider.startswith(provider_urn + "::")


def uploads(resource, opened: bool = False) -> dict[str, str]:
    source = unwrap(resource.state) if opened else resource.inputs
    return {u["file"]: u["content"] for u in source["uploads"]}


def password(run: OfflineRun, user: str) -> str:
    return unwrap(by_name(run, f"redis-{user}-password", "RandomPassword").state["result"])


def test_a_data_node_and_a_sentinel_on_each_ha_host_with_its_provider(built):
    run, made = built
    providers = {name: by_name(run, f"{name}-docker", "providers:docker").urn for name in HOSTS}
    found = containers(run)
    assert sorted(found) == sorted(f"redis-{host}-{role}" for host in HOSTS for role in ("data", "sentinel"))
    for host in HOSTS:
        member = by_name(run, f"redis-{host}", "RedisMember")
        assert member.parent == by_name(run, "redis", "RedisCluster").urn
        for role in ("data", "sentinel"):
            resource = found[f"redis-{host}-{role}"]
            assert deploys_to(resource, providers[host]), f"{resource.name} deploys to {resource.provider}"
            assert resource.inputs["name"] == f"ceres-prod-redis-{host}-{role}"
            image = by_name(run, f"redis-{host}-{role}-image", "RemoteImage")
            assert image.inputs["name"] == IMAGE and deploys_to(image, providers[host])
            assert deploys_to(by_name(run, f"redis-{host}-{role}", "Volume"), providers[host])
    # The component itself sits with the apps (node1), like the single Redis.
    assert made["redis"].host_name == VIP and made["redis"].port == haproxy_redis.REDIS_PRIMARY_PORT == 6380


def test_every_container_has_the_production_shape_on_the_host_network(built):
    run, _ = built
    for name, container in containers(run).items():
        inputs = container.inputs
        assert inputs["networkMode"] == "host" and not inputs["networksAdvanced"], name
        assert not inputs["ports"], f"{name} publishes a port"
        assert inputs["restart"] == "unless-stopped" and inputs["wait"] is True
        assert inputs["memory"] == (256 if name.endswith("-data") else SENTINEL_MEMORY_MB)
        test = inputs["healthcheck"]["tests"]
        port = config.PORT if name.endswith("-data") else ha.SENTINEL_PORT
        user = config.HEALTHCHECK_USER if name.endswith("-data") else ha.SENTINEL_CLIENT_USER
        # A data node: a primary or a linked replica (run for real in test_redis_cluster_start.py).
        check = ("info replication | grep -Eq '^(role:master|master_link_status:up)'" if name.endswith("-data")
                 else "ping | grep -qx PONG")
        assert test == ["CMD-SHELL", f"redis-cli -p {port} --user {user} --no-auth-warning {check}"]
        # The healthcheck's password is a secret env, read by redis-cli from REDISCLI_AUTH.
        assert inputs["envs"] == [SECRET_MARK]
        assert unwrap(container.state)["envs"] == [f"REDISCLI_AUTH={password(run, user)}"]


def test_members_follow_one_another_so_a_shared_change_replaces_one_at_a_time(built):
    """Each member's data node waits for the previous member's Sentinel (Pulumi registers a
    resource only once its dependencies are done), through depends_on alone, so replacing one
    never cascades into the next: a primary and two Sentinels stay up while one member changes."""
    run, _ = built
    found = containers(run)
    order = [(found[f"redis-{host}-data"], found[f"redis-{host}-sentinel"]) for host in HOSTS]
    for (_, previous_sentinel), (data, sentinel) in zip(order, order[1:]):
        assert previous_sentinel.urn in data.dependencies
        assert data.urn in sentinel.dependencies
        for resource in (data, sentinel):
            assert all(previous_sentinel.urn not in deps for deps in resource.property_dependencies.values())
    first_data, first_sentinel = order[0]
    assert first_data.urn in first_sentinel.dependencies
    assert not any(r.urn in first_data.dependencies for pair in order[1:] for r in pair)


def test_data_nodes_run_the_rendered_config_from_their_volume(built):
    run, _ = built
    for host, address in HOSTS.items():
        container = containers(run)[f"redis-{host}-data"]
        assert container.inputs["command"][:2] == ["sh", "-c"]
        assert f"exec docker-entrypoint.sh redis-server {LIVE_FILE}" in container.inputs["command"][2]
        assert [v["containerPath"] for v in container.inputs["volumes"]] == [config.DATA_DIR]
        files = uploads(container)
        conf = files[config.CONFIG_FILE]
        assert f"replica-announce-ip {address}\n" in conf and f"aclfile {config.ACL_FILE}\n" in conf
        assert f"include {ha.REPLICATION_SECRET_FILE}\n" in conf and "min-replicas-to-write 1\n" in conf
        assert files[config.ACL_FILE] == SECRET_MARK and files[ha.REPLICATION_SECRET_FILE] == SECRET_MARK


def test_replicas_name_the_first_member_as_primary(built):
    run, _ = built
    found = containers(run)
    assert "replicaof" not in uploads(found["redis-node1-data"])[config.CONFIG_FILE]
    for host in ("node2", "node3"):
        assert "replicaof 10.0.0.11 6379\n" in uploads(found[f"redis-{host}-data"])[config.CONFIG_FILE]
    for host, address in HOSTS.items():
        sentinel_conf = uploads(found[f"redis-{host}-sentinel"])[ha.SENTINEL_BASE_FILE]
        assert "sentinel monitor ceres 10.0.0.11 6379 2\n" in sentinel_conf
        assert f"sentinel announce-ip {address}\n" in sentinel_conf
    primary = found["redis-node1-data"].urn
    for host in HOSTS:
        assert primary in found[f"redis-{host}-sentinel"].dependencies


def test_the_acl_and_credential_files_hold_digests_and_the_right_logins(built):
    run, _ = built
    found = containers(run)
    acl = uploads(found["redis-node2-data"], opened=True)[config.ACL_FILE]
    assert [line.split()[1] for line in acl.splitlines()] == [
        "default", "healthcheck", "gitea", "nextcloud", "ceres_monitor",
        ha.SENTINEL_USER, ha.REPLICATION_USER, ha.HAPROXY_USER]
    assert "offline-" not in acl  # digests only
    # Every node has the same users: any may become the primary.
    assert {uploads(found[f"redis-{h}-data"], opened=True)[config.ACL_FILE] for h in HOSTS} == {acl}
    replication = uploads(found["redis-node3-data"], opened=True)[ha.REPLICATION_SECRET_FILE]
    assert replication == f"masteruser {ha.REPLICATION_USER}\nmasterauth {password(run, ha.REPLICATION_USER)}\n"
    credentials = uploads(found["redis-node2-sentinel"], opened=True)[ha.SENTINEL_SECRET_FILE]
    assert f"sentinel auth-pass ceres {password(run, ha.SENTINEL_USER)}\n" in credentials
    assert uploads(found["redis-node2-sentinel"])[ha.SENTINEL_SECRET_FILE] == SECRET_MARK


def test_no_password_in_any_plain_file_or_input(built):
    run, _ = built
    secrets = [unwrap(r.state["result"]) for r in of_type(run, "RandomPassword")]
    assert len(secrets) == len(set(secrets)) == 9
    for container in containers(run).values():
        plain = json.dumps([container.inputs["command"], *(
            text for text in uploads(container).values() if text != SECRET_MARK)])
        assert not any(secret in plain for secret in secrets), container.name
    assert_no_plain_secrets(run)


def test_sentinels_run_as_redis_from_the_start_script(built):
    run, _ = built
    for host in HOSTS:
        sentinel = containers(run)[f"redis-{host}-sentinel"]
        assert sentinel.inputs["user"] == "redis"
        assert sentinel.inputs["command"][:2] == ["sh", "-c"]
        assert f'exec redis-sentinel "$live"' in sentinel.inputs["command"][2]
        assert [v["containerPath"] for v in sentinel.inputs["volumes"]] == [ha.SENTINEL_DATA_DIR]


def test_nextcloud_logs_in_at_the_primary_endpoint_on_the_virtual_ip(built):
    run, made = built
    login = made["nextcloud"].login
    assert (login.host, login.port, login.username, login.db) == (VIP, 6380, "nextcloud", 1)
    assert login.ready is made["redis"]
    assert by_name(run, "cache-nextcloud", "CacheEdge").parent == by_name(run, "nextcloud", "Service").urn


def test_gitea_url_lists_every_sentinel(built):
    run, _ = built
    stand_in = by_name(run, "gitea-stand-in", "Container")
    assert stand_in.inputs["envs"] == [SECRET_MARK]
    url = urlsplit(unwrap(stand_in.state)["envs"][0].removeprefix("URL="))
    assert url.scheme == "redis+sentinel" and url.path == "/0"
    assert url.netloc.rsplit("@", 1)[1] == "10.0.0.11:26379,10.0.0.12:26379,10.0.0.13:26379"
    assert unquote(url.netloc.rsplit("@", 1)[0]) == f"gitea:{password(run, 'gitea')}"
    query = parse_qs(url.query)
    assert query["mastername"] == ["ceres"] and query["sentinelusername"] == [ha.SENTINEL_CLIENT_USER]
    assert query["sentinelpassword"] == [password(run, ha.SENTINEL_CLIENT_USER)]


def test_haproxy_section_and_check_password(built):
    _, made = built
    section = made["redis"].haproxy_section()
    assert "    bind 0.0.0.0:6380\n" in section
    for address in HOSTS.values():
        assert f"{address}:6379 check" in section
    assert "${CERES_REDIS_CHECK_PASSWORD}" in section and "offline-" not in section
    assert isinstance(made["redis"].haproxy_check_password, pulumi.Output)


def test_the_ha_edge_lists_the_data_nodes(built):
    run, made = built
    edge = by_name(run, "ha-redis", "HaEdge")
    assert edge.parent == by_name(run, "redis", "RedisCluster").urn
    assert (edge.inputs["source"], edge.inputs["target"]) == ("redis", "redis_sentinel")
    [recorded] = [e for e in made["redis"].edges if e.edge.id == "ha-redis"]
    assert recorded.members == [f"{address}:6379" for address in HOSTS.values()]


def test_the_exporter_login_follows_the_primary():
    _, made = build(monitoring=True)
    login = made["redis"].monitoring_login()
    assert (login.host, login.port, login.username, login.db) == (VIP, 6380, config.MONITOR_USER, None)


def test_fails_without_monitoring_for_the_exporter_or_with_too_few_sentinels():
    _, made = build(monitoring=False)
    with pytest.raises(KeyError, match="monitoring=True"):
        made["redis"].monitoring_login()
    with pytest.raises(KeyError, match="no user for 'mattermost'"):
        made["redis"].user("mattermost")
    with pytest.raises(Exception, match="3 Sentinels on 2 HA hosts"):
        build(ha_hosts=2)
