"""Redis and the cache edge, built under the recording engine."""

from __future__ import annotations


import pulumi
import pytest

from cli.offline import SECRET_MARK
from components.base import Service
from components.config.redis import ACL_FILE, CONFIG_FILE
from components.integrations.cache import CacheEdge
from components.services.redis import Redis
from tests.support import assert_no_plain_secrets, by_name, of_type, run_components, unwrap

CONSUMERS = ("gitea", "nextcloud")


def password(run, name: str) -> str:
    """The value the mock generated for RandomPassword `name`."""
    return unwrap(by_name(run, name, "RandomPassword").state["result"])


def build(monitoring: bool = True, with_edges: bool = True):
    made = {}

    def program(spec, host):
        redis = made["redis"] = Redis(spec.services.redis, host, CONSUMERS, monitoring=monitoring)
        if with_edges:
            for consumer in CONSUMERS:
                made[consumer] = CacheEdge(Service(consumer, host.placed()), redis)
    return run_components(program), made


def test_container_has_the_production_shape_on_the_data_network_only():
    run, _ = build()
    container = by_name(run, "redis", "Container")
    image = by_name(run, "redis-image", "RemoteImage")
    assert image.inputs["name"] == "redis:7.4.6-bookworm"
    assert container.inputs["restart"] == "unless-stopped" and container.inputs["wait"] is True
    assert container.inputs["memory"] == 256 and not container.inputs.get("ports")
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-data"]
    assert container.inputs["command"] == ["redis-server", CONFIG_FILE]
    assert [v["containerPath"] for v in container.inputs["volumes"]] == ["/data"]
    test = container.inputs["healthcheck"]["tests"]
    assert test[0] == "CMD-SHELL" and "redis-cli --user healthcheck" in test[1] and "PONG" in test[1]


def test_users_come_from_a_secret_acl_file_and_the_healthcheck_password_from_env():
    run, _ = build()
    container = by_name(run, "redis", "Container")
    uploads = {u["file"]: u["content"] for u in container.inputs["uploads"]}
    assert uploads[ACL_FILE] == SECRET_MARK
    assert "maxmemory 128mb" in uploads[CONFIG_FILE] and f"aclfile {ACL_FILE}" in uploads[CONFIG_FILE]
    assert container.inputs["envs"] == [SECRET_MARK]
    state = unwrap(container.state)
    assert state["envs"] == [f"REDISCLI_AUTH={password(run, 'redis-healthcheck-password')}"]
    acl = next(u["content"] for u in state["uploads"] if u["file"] == ACL_FILE)
    assert "offline-" not in acl  # digests only
    assert [line.split()[1] for line in acl.splitlines()] == ["default", "healthcheck", "gitea", "nextcloud", "ceres_monitor"]
    passwords = {r.name for r in of_type(run, "RandomPassword")}
    assert passwords == {f"redis-{u}-password" for u in ("healthcheck", "gitea", "nextcloud", "ceres_monitor")}
    assert_no_plain_secrets(run)


def test_without_monitoring_there_is_no_exporter_user():
    run, made = build(monitoring=False, with_edges=False)
    assert "redis-ceres_monitor-password" not in {r.name for r in of_type(run, "RandomPassword")}
    with pytest.raises(KeyError, match="monitoring=True"):
        made["redis"].monitoring_login()


def test_each_consumer_gets_its_own_user_and_database():
    _, made = build()
    redis = made["redis"]
    gitea, nextcloud = redis.user("gitea"), redis.user("nextcloud")
    assert (gitea.host, gitea.port, gitea.username, gitea.db) == ("redis", 6379, "gitea", 0)
    assert (nextcloud.username, nextcloud.db) == ("nextcloud", 1)
    assert gitea.ready is redis.container.container
    assert isinstance(gitea.password, pulumi.Output)
    monitor = redis.monitoring_login()
    assert (monitor.username, monitor.db) == ("ceres_monitor", None)
    with pytest.raises(KeyError, match="consumers are"):
        redis.user("mattermost")


def test_cache_edges_live_under_their_consumer_and_hand_out_secret_credentials():
    run, made = build()
    for consumer in CONSUMERS:
        edge = by_name(run, f"cache-{consumer}", "CacheEdge")
        parent = next(r for r in run.resources if r.urn == edge.parent)
        assert parent.name == consumer
        assert edge.inputs["target"] == "redis" and edge.inputs["source"] == consumer
        assert made[consumer].login.username == consumer


def test_cache_edge_env_and_url_carry_the_password_only_as_a_secret():
    recorded = {}

    def program(spec, host):
        redis = Redis(spec.services.redis, host, CONSUMERS)
        app = Service("gitea", host.placed())
        edge = CacheEdge(app, redis)
        entries = edge.env("APP_", {"HOST": "host_port", "USER": "user", "DB": "db", "PASS": "password", "URL": "url"})
        pulumi.Output.all(*entries).apply(lambda values: recorded.setdefault("env", values))
        # A resource's recorded inputs show "[secret]" for anything secret.
        pulumi.ComponentResource("test:index:Probe", "probe", {"url": edge.url(), "password": entries[3], "user": entries[1]})

    run = run_components(program)
    probe = by_name(run, "probe", "Probe")
    assert probe.inputs == {"url": SECRET_MARK, "password": SECRET_MARK, "user": "APP_USER=gitea"}
    secret = password(run, "redis-gitea-password")
    assert recorded["env"] == [
        "APP_HOST=redis:6379", "APP_USER=gitea", "APP_DB=0", f"APP_PASS={secret}",
        f"APP_URL=redis://gitea:{secret}@redis:6379/0",
    ]


def test_an_edge_the_catalog_does_not_know_fails():
    with pytest.raises(Exception, match="cache-keycloak"):
        run_components(lambda spec, host: CacheEdge(Service("keycloak", host.placed()), Redis(spec.services.redis, host, CONSUMERS)))
