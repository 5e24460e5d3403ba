"""The prod stack's HA tier in the whole graph: apps reach the data tier only through the HAProxy
pair on the virtual IP, the clusters are spread over the HA hosts, and the edges score."""

from __future__ import annotations

import pytest
import yaml

from stacks.load import ConfigError

from tests.support import by_name, of_type

VIP = "10.0.0.100"


def envs(run, container: str) -> list[str]:
    return [e for e in by_name(run, container, "Container").inputs["envs"] if isinstance(e, str)]


def test_apps_reach_postgresql_and_redis_through_the_virtual_ip(offline):
    run = offline("prod")
    assert f"GITEA__database__HOST={VIP}:5000" in envs(run, "gitea")
    assert f"GF_DATABASE_HOST={VIP}:5000" in envs(run, "grafana")
    assert f"KC_DB_URL=jdbc:postgresql://{VIP}:5000/keycloak" in envs(run, "keycloak")
    # Nextcloud's cache is set by its bootstrap (occ), to HAProxy's Redis primary endpoint.
    script = by_name(run, "nextcloud-bootstrap", "Command").inputs["stdin"]
    assert f"'host' => '{VIP}'," in script and "'port' => 6380," in script
    # Nothing of the single-server data tier is left.
    names = {c.name for c in of_type(run, "Container")}
    assert not {"postgres", "redis"} & names


def test_the_data_network_leaves_the_host_only_when_the_data_tier_is_elsewhere(offline):
    assert by_name(offline("prod"), "node1-data", "Network").inputs["internal"] is False
    assert by_name(offline("dev"), "local-data", "Network").inputs["internal"] is True


def test_every_consumer_login_waits_for_the_proxy_pair(offline):
    run = offline("prod")
    urns = {r.urn: r for r in run.resources}
    proxies = {r.urn for r in of_type(run, "Container") if r.name.startswith(("haproxy-", "keepalived-"))}
    provisioning = [r for r in of_type(run, "Command") if r.name.startswith("postgres-") and r.name.endswith("-database")]
    assert provisioning
    for step in provisioning:
        assert proxies <= set(step.dependencies), step.name
    haproxy = [urns[u] for u in proxies if urns[u].name.startswith("haproxy-")]
    redis_members = {r.urn for r in of_type(run, "Container") if r.name.startswith("redis-node")}
    for proxy in haproxy:
        assert redis_members <= set(proxy.dependencies), proxy.name


def test_prometheus_scrapes_every_patroni_member_and_both_proxies_over_the_data_network(offline):
    run = offline("prod")
    prometheus = by_name(run, "prometheus", "Container")
    text = next(u["content"] for u in prometheus.inputs["uploads"] if u["file"].endswith("prometheus.yml"))
    jobs = {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}
    assert jobs["patroni"]["static_configs"] == [{"targets": ["10.0.0.11:8008", "10.0.0.12:8008", "10.0.0.13:8008"]}]
    assert jobs["haproxy"]["static_configs"] == [{"targets": ["10.0.0.11:8404", "10.0.0.12:8404"]}]
    assert "ceres-prod-data" in {n["name"] for n in prometheus.inputs["networksAdvanced"]}
    rules = next(u["content"] for u in prometheus.inputs["uploads"] if u["file"].endswith("rules/ceres.yml"))
    assert "PostgresReplicationLag" in rules


def test_the_ha_edges_score_in_prod_and_do_not_apply_in_dev(offline):
    prod = {e["id"]: e["status"] for e in offline("prod").outputs["integration_matrix"]}
    dev = {e["id"]: e["status"] for e in offline("dev").outputs["integration_matrix"]}
    for edge in ("ha-postgres", "ha-redis", "ha-proxy-vip", "scrape-patroni", "scrape-haproxy"):
        assert prod[edge] == "configured" and dev[edge] == "not_applicable", edge


def test_switching_the_virtual_ip_edge_off_falls_back_to_single_servers(offline):
    run = offline("prod", integrations={"ha-proxy-vip": False})
    names = {c.name for c in of_type(run, "Container")}
    assert {"postgres", "redis"} <= names and not any(n.startswith(("patroni-", "haproxy-")) for n in names)
    statuses = {e["id"]: e for e in run.outputs["integration_matrix"]}
    assert statuses["ha-postgres"]["status"] == "missing" and "ha-proxy-vip" in statuses["ha-postgres"]["reason"]


def test_switching_off_only_the_postgresql_cluster_is_refused_with_the_fix(offline):
    with pytest.raises(ConfigError) as refused:
        offline("prod", integrations={"ha-postgres": False})
    assert "integrations.ha-postgres" in str(refused.value) and "switch ha-proxy-vip off too" in str(refused.value)
    run = offline("prod", integrations={"ha-postgres": False, "ha-proxy-vip": False})
    assert {"postgres", "redis"} <= {c.name for c in of_type(run, "Container")}
    statuses = {e["id"]: e for e in run.outputs["integration_matrix"]}
    assert statuses["ha-redis"]["status"] == "missing" and "switched off" in statuses["ha-redis"]["reason"]


def test_the_admin_uis_behind_the_gate_are_also_watched_at_their_own_health_endpoints(offline):
    run = offline("prod")
    step = by_name(run, "uptime_kuma-monitors", "Command")
    text = str(step.inputs)
    assert "http://prometheus:9090/-/healthy" in text and "http://alertmanager:9093/-/healthy" in text
