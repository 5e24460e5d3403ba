"""Properties of the graph the program builds, read from the recording engine."""

from __future__ import annotations

import asyncio

import json
import runpy
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings

from cli.offline import OfflineEngine, SECRET_MARK
from components.catalog import EDGES_BY_ID, GROUP_ENDPOINTS
from components.config import postgres as pg_config
from components.container import DEFAULT_STOP_GRACE_SECONDS
from stacks.platform import BUILDABLE_EDGES, planned_edges
from tests.conftest import stack_config
from tests.support import assert_no_plain_secrets, by_name, of_type

MAIN = Path(__file__).resolve().parents[2] / "__main__.py"


def containers(run):
    return of_type(run, "docker:index/container:Container")


def envs(container) -> list[str]:
    return container.inputs.get("envs", [])


def test_every_database_consumer_has_its_own_database_and_role(offline):
    run = offline("dev")
    edges = [r for r in run.resources if r.type == "ceres:integrations:DatabaseEdge"]
    assert edges, "the dev stack has database edges"
    hba = next(u["content"] for u in by_name(run, "postgres", "Container").inputs["uploads"] if u["file"].endswith("pg_hba.conf"))
    for edge in edges:
        consumer = edge.inputs["source"]
        command = by_name(run, f"postgres-{consumer}-database", "Command")
        assert f"CREATE DATABASE {consumer} OWNER {consumer}" in command.inputs["stdin"]
        assert command.inputs["environment"]["CERES_ROLE_PASSWORD"] == SECRET_MARK
        assert f"host    {consumer}  {consumer}  all  scram-sha-256" in hba
        app = by_name(run, consumer, "Container")
        own = by_name(run, f"postgres-{consumer}-password", "RandomPassword").urn
        others = {r.urn for r in of_type(run, "RandomPassword") if r.name.startswith("postgres-") and r.urn != own}
        assert own in app.dependencies, f"{consumer} gets its own database password"
        assert not others & set(app.dependencies), f"{consumer} gets another role's password"
        assert command.urn in app.dependencies, "the app starts only once its database exists"


def test_no_app_uses_the_superuser(offline):
    run = offline("dev")
    superuser_password = by_name(run, "postgres-superuser", "RandomPassword").urn
    for container in containers(run):
        if container.name != "postgres":
            assert not any(e.endswith("USER=postgres") for e in envs(container)), container.name
            assert superuser_password not in container.dependencies, f"{container.name} gets the superuser's password"


def test_only_the_proxy_publishes_ports(offline):
    for stack in ("dev", "prod"):
        for container in containers(offline(stack)):
            if container.name == "loki" and stack == "prod":
                # The HA hosts' log shippers push to it: only on the apps host's private address.
                assert [(p["internal"], p["external"], p["ip"]) for p in container.inputs["ports"]] == [(3100, 3100, "10.0.0.11")]
            elif container.name != "caddy":
                assert not container.inputs.get("ports"), f"{stack}: {container.name} publishes ports"


def test_every_container_is_stopped_with_a_grace_period_never_force_removed(offline):
    """Without destroy_grace_seconds the Docker provider force-removes a container it replaces or
    destroys (SIGKILL); PostgreSQL then runs crash recovery and a Patroni leader's key must expire."""
    for stack in ("dev", "prod"):
        for container in containers(offline(stack)):
            if container.inputs.get("attach"):
                continue  # a one-shot chore (volume fill), done before anything uses it
            grace = container.inputs.get("destroyGraceSeconds")
            assert grace, f"{stack}: {container.name} would be force-removed"
            postgres = container.name == "postgres" or container.name.startswith("patroni-")
            assert grace == (pg_config.STOP_GRACE_SECONDS if postgres else DEFAULT_STOP_GRACE_SECONDS), container.name


def test_data_network_is_internal_and_postgres_is_only_on_it(offline):
    run = offline("dev")
    data = by_name(run, "local-data", "Network")
    assert data.inputs["internal"] is True
    postgres = by_name(run, "postgres", "Container")
    assert [n["name"] for n in postgres.inputs["networksAdvanced"]] == [data.inputs["name"]]


def test_containers_have_the_production_shape(offline):
    run = offline("prod")
    images = {r.urn: r.inputs["name"] for r in of_type(run, "RemoteImage")}
    images |= {r.urn: r.inputs["imageName"] for r in of_type(run, "docker:index/image:Image")}
    for container in containers(run):
        if container.inputs.get("mustRun") is False:
            continue  # one-shot helpers (the probe tools copy) run to completion, not as services
        image = next(images[d] for d in container.dependencies if d in images)
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        assert container.inputs["restart"] == "unless-stopped"
        assert container.inputs["wait"] is True and container.inputs["healthcheck"]["tests"]
        assert container.inputs["memory"] >= 64
        assert container.inputs["name"].startswith("ceres-prod-")


def test_edges_live_under_their_consumer(offline):
    run = offline("dev")
    urns = {r.urn: r for r in run.resources}
    for edge in (r for r in run.resources if r.type.startswith("ceres:integrations:")):
        parent = urns[edge.parent]
        entry = EDGES_BY_ID[edge.name]
        assert parent.type.startswith("ceres:services:")
        if entry.source in GROUP_ENDPOINTS:
            # A group (every container, the OTLP apps) has no component: the service realising it holds the edge.
            assert parent.name in entry.services
        else:
            assert parent.name == entry.source


def test_every_resource_on_a_host_uses_that_hosts_provider(offline):
    run = offline("prod")
    providers = {r.urn: r.name.removesuffix("-docker") for r in of_type(run, "pulumi:providers:docker")}
    placed: dict[str, set[str]] = {}
    for resource in run.resources:
        if resource.type.startswith("docker:"):
            host = providers.get(resource.provider)
            assert host is not None, resource.name
            # A member of the HA tier is named after its host; everything else runs on the apps host.
            named_host = next((h for h in ("node2", "node3") if h in resource.name), "node1")
            if resource.type == "docker:index/container:Container":
                assert host == named_host, resource.name
            placed.setdefault(host, set()).add(resource.name)
    # The HA members are spread: each HA host runs an etcd, a Patroni and a Redis with its Sentinel.
    for host in ("node1", "node2", "node3"):
        assert {f"etcd-{host}", f"patroni-{host}", f"redis-{host}-data", f"redis-{host}-sentinel"} <= placed[host], host
    assert {"haproxy-node1", "keepalived-node1"} <= placed["node1"] and {"haproxy-node2", "keepalived-node2"} <= placed["node2"]
    assert not {"haproxy-node3", "keepalived-node3"} & placed["node3"]


def test_secrets_stay_secret_everywhere(offline):
    run = offline("dev")
    for password in of_type(run, "RandomPassword"):
        assert "result" in password.secret_outputs
    # The mock engine's generated values all start with "offline-": none may reach a plain input.
    assert_no_plain_secrets(run)
    # Outputs are plain data, except the ones that carry a credential, which must be secret.
    credentials = {name: value for name, value in run.outputs.items() if isinstance(value, pulumi.Output)}
    assert set(credentials) == {"backup_password"}
    for name, value in credentials.items():
        assert asyncio.run(value.is_secret()) is True, name
    assert "offline-" not in json.dumps({k: v for k, v in run.outputs.items() if k not in credentials})
    for container in containers(run):
        assert SECRET_MARK not in json.dumps(container.inputs.get("labels", []))


def test_planned_edges_are_exactly_the_edges_built(offline):
    run = offline("dev")
    built = {r.name for r in run.resources if r.type.startswith("ceres:integrations:")}
    from stacks.load import load_spec
    config, secret_keys = stack_config("dev")
    assert built == planned_edges(load_spec("dev", config, set(secret_keys)))
    assert built <= BUILDABLE_EDGES


def test_gitea_falls_back_to_sqlite_without_its_database_edge(offline):
    run = offline("dev", integrations={"db-gitea": False})
    gitea = by_name(run, "gitea", "Container")
    assert "GITEA__database__DB_TYPE=sqlite3" in envs(gitea)
    assert not [c for c in of_type(run, "Command") if c.name == "postgres-gitea-database"], "postgres provisions no database nobody uses"


def test_the_program_refuses_bad_config_before_registering_anything():
    config, secret_keys = stack_config("dev", domain="https://nope", services='{"gitlab": {}}')
    engine = OfflineEngine("dev", config, secret_keys)
    with pytest.raises(pulumi.RunError) as caught:
        engine.run(lambda: runpy.run_path(str(MAIN), run_name="__main__"))
    message = str(caught.value)
    assert "ceres:domain" in message and "ceres:services.gitlab" in message
    assert engine.monitor.recorded == []


def test_the_program_exports_the_score_and_matrix():
    config, secret_keys = stack_config("dev")
    engine = OfflineEngine("dev", config, secret_keys)
    engine.run(lambda: runpy.run_path(str(MAIN), run_name="__main__"))
    exported = settings.get_root_resource().outputs
    assert set(exported) >= {"integration_score", "integration_matrix"}
    assert exported["integration_score"]["overall"]["have"] >= 1
    assert {edge["id"] for edge in exported["integration_matrix"]} == set(EDGES_BY_ID)


def test_the_dev_stack_stands_up_every_service_of_the_spec(offline):
    from stacks.spec import SERVICE_NAMES

    run = offline("dev")
    components = {r.urn: r for r in run.resources if r.type.startswith("ceres:services:")}
    by_service = {r.name: r for r in components.values()}
    missing = set(SERVICE_NAMES) - set(by_service) - {"backup"}  # backups are the backup issue's
    assert not missing, f"no component for {sorted(missing)}"
    for name, component in by_service.items():
        inside = [c for c in containers(run) if c.parent == component.urn]
        assert inside, f"{name} has no container"


def test_caddy_publishes_exactly_http_and_https(offline):
    caddy = by_name(offline("dev"), "caddy", "Container")
    assert sorted((p["internal"], p["external"]) for p in caddy.inputs["ports"]) == [(80, 80), (443, 443)]


def test_apps_trust_only_caddys_fixed_address_as_their_proxy(offline):
    run = offline("dev", hosts=[{"name": "local", "url": "unix:///var/run/docker.sock", "roles": ["apps"], "edge_subnet": "10.99.5.0/24"}])
    assert by_name(run, "local-edge", "Network").inputs["ipamConfigs"] == [{"subnet": "10.99.5.0/24"}]
    caddy = by_name(run, "caddy", "Container")
    assert [n.get("ipv4Address") for n in caddy.inputs["networksAdvanced"] if n["name"].endswith("-edge")] == ["10.99.5.2"]
    assert "TRUSTED_PROXIES=10.99.5.2" in envs(by_name(run, "nextcloud", "Container"))
    assert "KC_PROXY_TRUSTED_ADDRESSES=10.99.5.2" in envs(by_name(run, "keycloak", "Container"))
    for container in containers(run):
        if container.name != "caddy":
            assert not any(n.get("ipv4Address") for n in container.inputs.get("networksAdvanced", [])), container.name


def test_admin_only_uis_are_routed_only_behind_the_sso_gate(offline):
    from components.catalog import GATED_UIS

    gated = {f"route-{ui.replace('_', '-')}" for ui in GATED_UIS}
    run = offline("dev")
    routed = {r.name for r in run.resources if r.type == "ceres:integrations:RouteEdge"}
    assert gated <= routed
    assert by_name(run, "sso-proxy", "ForwardAuthEdge").parent == by_name(run, "caddy", "Caddy").urn
    caddyfile = by_name(run, "caddy", "Container").inputs["uploads"][0]["content"]
    for host in ("prometheus.ceres.localhost", "alertmanager.ceres.localhost", "status.ceres.localhost"):
        block = caddyfile.split(f"\n{host} {{\n", 1)[1].split("\n}\n", 1)[0]
        assert "forward_auth oauth2-proxy:4180 {" in block, host
    off = offline("dev", integrations={"sso-proxy": False})
    assert not gated & {r.name for r in off.resources if r.type == "ceres:integrations:RouteEdge"}
    reasons = {e["id"]: e["reason"] for e in off.outputs["integration_matrix"]}
    assert reasons["route-prometheus"] == "needs sso-proxy, which is switched off (integrations.sso-proxy=false)"


def test_the_gate_does_not_apply_when_no_admin_ui_is_routed(offline):
    run = offline("dev", integrations={"route-prometheus": False, "route-alertmanager": False, "route-uptime-kuma": False})
    statuses = {e["id"]: e for e in run.outputs["integration_matrix"]}
    assert statuses["sso-proxy"]["status"] == "not_applicable"
    assert not [r for r in run.resources if r.type == "ceres:integrations:ForwardAuthEdge"]


def test_bootstrap_steps_run_after_their_container_and_keep_their_output_secret(offline):
    run = offline("dev")
    urns = {r.urn: r for r in run.resources}
    steps = {c.name: c for c in of_type(run, "Command") if not c.name.startswith("postgres-")}
    assert set(steps) == {
        "gitea-bootstrap", "mattermost-bootstrap", "mattermost-bot-token", "redmine-bootstrap",
        "wikijs-bootstrap", "uptime_kuma-bootstrap", "nextcloud-bootstrap",
        # single sign-on, the app's side of it
        "gitea-sso", "gitea-sso-reload", "nextcloud-sso", "wikijs-sso", "redmine-sso", "portainer-sso",
        # chat, the source's side of it
        "nextcloud-chat", "redmine-chat", "uptime_kuma-notifications", "uptime_kuma-monitors",
        # the workflow: the wiki's Gitea bot, Redmine's commit and wiki settings, Nextcloud's folders
        "ceres-wiki-account", "redmine-commits", "redmine-wiki", "nextcloud-folders",
    }
    def waits_for_a_container(resource, seen=frozenset()) -> bool:
        for dependency in (urns[d] for d in resource.dependencies if d in urns and d not in seen):
            if dependency.type.endswith("Container") or waits_for_a_container(dependency, seen | {resource.urn}):
                return True
        return False

    for step in steps.values():
        assert waits_for_a_container(step), step.name
    # The steps that print a token or key: what they print is a secret output.
    for name in ("gitea-bootstrap", "mattermost-bot-token", "redmine-bootstrap", "wikijs-bootstrap", "uptime_kuma-bootstrap",
                 "ceres-wiki-account"):
        assert "stdout" in steps[name].secret_outputs, name


def test_every_public_app_signs_in_through_the_realm(offline):
    from components.catalog import PUBLIC_APPS

    run = offline("dev")
    logins = {r.inputs["source"] for r in run.resources if r.type == "ceres:integrations:OidcClientEdge"}
    assert logins == set(PUBLIC_APPS) - {"keycloak"}
    clients = {r.inputs["clientId"]: r.inputs for r in of_type(run, "keycloak:openid/client:Client")}
    for client_id, client in clients.items():
        assert client["clientSecret"] == SECRET_MARK, client_id
        for uri in client["validRedirectUris"]:
            assert uri.startswith("https://") and ".ceres.localhost/" in uri, (client_id, uri)
    assert set(clients) == {*(app for app in logins), "oauth2-proxy"}


def test_a_container_with_published_ports_is_on_a_network_docker_publishes_from(offline):
    # Docker binds no port of a container whose networks are all internal.
    for stack in ("dev", "prod"):
        run = offline(stack)
        internal = {n.inputs["name"]: n.inputs["internal"] for n in of_type(run, "Network")}
        for container in containers(run):
            if container.inputs.get("ports"):
                names = [n["name"] for n in container.inputs["networksAdvanced"]]
                assert any(not internal[name] for name in names), f"{stack}: {container.name} on {names}"
