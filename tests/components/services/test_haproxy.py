"""The HAProxy + Keepalived pair on the prod HA hosts, built under the recording engine; then what
it records (configs, keepalived command, healthchecks) run for real in two network namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pulumi_random as random
import pytest

from cli.offline import SECRET_MARK, OfflineEngine, OfflineRun, Recorded
from components.config.haproxy import PRIMARY_PORT, STATS_PORT
from components.config.haproxy_redis import PASSWORD_ENV, REDIS_PRIMARY_PORT, RedisPrimarySettings, redis_primary_section
from components.config.keepalived import BACKUP_PRIORITY, CHECK_SCRIPT, PRIMARY_PRIORITY, check_haproxy_script
from components.config.redis_sentinel import Node
from components.docker_host import PROBE, DockerHostComponent
from components.services.haproxy import HAPROXY_CFG, KEEPALIVED_CONF, VRRP_PID, HAProxy
from stacks.load import load_spec
from tests.conftest import stack_config
from tests.support import assert_no_plain_secrets, by_name, of_type, unwrap

PG_MEMBERS = [("pg-node1", "10.0.0.11"), ("pg-node2", "10.0.0.12"), ("pg-node3", "10.0.0.13")]
REDIS_SECTION = redis_primary_section(RedisPrimarySettings(
    nodes=tuple(Node(address, 6379) for _, address in PG_MEMBERS)))
INSTANCES = {"node1": "10.0.0.11", "node2": "10.0.0.12"}


def build(with_redis: bool = True, **settings: Any) -> tuple[OfflineRun, dict]:
    """The prod spec, one DockerHostComponent per host, and the pair over the HA hosts (with the
    Redis listener and its check password, made by a stand-in for the Redis cluster, when asked)."""
    config, secret_keys = stack_config("prod", **settings)
    made: dict[str, Any] = {}

    def program() -> dict:
        spec = made["spec"] = load_spec("prod", config, set(secret_keys))
        hosts = made["hosts"] = [DockerHostComponent(host, "ceres-prod") for host in spec.hosts_with("ha")]
        redis: dict[str, Any] = {}
        if with_redis:
            password = random.RandomPassword("redis-haproxy-check", length=32, special=False).result
            redis = {"redis_section": REDIS_SECTION, "redis_check_password": password}
        made["haproxy"] = HAProxy(spec, hosts, postgres_members=PG_MEMBERS, **redis)
        return {}

    engine = OfflineEngine("prod", config, secret_keys)
    engine.run(program)
    return OfflineRun("prod", engine.monitor.recorded, {}), made


@pytest.fixture(scope="module")
def pair() -> tuple[OfflineRun, dict]:
    return build()


def provider_of(run: OfflineRun, host: str) -> str:
    return by_name(run, f"{host}-docker", "providers:docker").urn


def uploads(container: Recorded) -> dict[str, str]:
    return {u["file"]: u["content"] for u in container.inputs["uploads"]}


def test_two_instances_each_on_its_own_ha_host(pair):
    run, made = pair
    instances = of_type(run, "HAProxyInstance")
    assert sorted(i.name for i in instances) == ["haproxy-node1", "haproxy-node2"]
    cluster = by_name(run, "haproxy", "services:HAProxy")
    assert all(i.parent == cluster.urn for i in instances)
    for host in INSTANCES:
        for service in ("haproxy", "keepalived"):
            container = by_name(run, f"{service}-{host}", "Container")
            assert container.provider == provider_of(run, host), f"{service}-{host} is not on {host}"
        assert by_name(run, f"haproxy-{host}-image", "RemoteImage").provider == provider_of(run, host)
        assert by_name(run, f"keepalived-{host}-image", "Image").provider == provider_of(run, host)
    assert not [r for r in of_type(run, "Container") if r.provider == provider_of(run, "node3")]


def test_the_second_instance_follows_the_first_so_one_always_holds_the_virtual_ip(pair):
    """A changed haproxy.cfg replaces HAProxy on the second host only once the first runs again
    with its Keepalived (depends_on alone: replacing one never cascades into the other)."""
    run, _ = pair
    first_host, second_host = INSTANCES
    first_keepalived = by_name(run, f"keepalived-{first_host}", "Container")
    second = by_name(run, f"haproxy-{second_host}", "Container")
    assert first_keepalived.urn in second.dependencies
    assert all(first_keepalived.urn not in deps for deps in second.property_dependencies.values())
    second_instance = {by_name(run, f"{service}-{second_host}", "Container").urn for service in ("haproxy", "keepalived")}
    assert not second_instance & set(by_name(run, f"haproxy-{first_host}", "Container").dependencies)


def test_every_container_has_the_production_shape_on_the_host_network(pair):
    run, made = pair
    for host in INSTANCES:
        for service, memory in (("haproxy", 256), ("keepalived", 64)):
            container = by_name(run, f"{service}-{host}", "Container")
            assert container.inputs["networkMode"] == "host"
            assert not container.inputs.get("networksAdvanced") and not container.inputs.get("ports")
            assert container.inputs["restart"] == "unless-stopped" and container.inputs["wait"] is True
            assert container.inputs["memory"] == memory
            assert container.inputs["healthcheck"]["tests"], f"{service}-{host} has no healthcheck"


def test_haproxy_runs_the_pinned_image_and_is_probed_through_the_host(pair):
    run, made = pair
    for host in INSTANCES:
        assert by_name(run, f"haproxy-{host}-image", "RemoteImage").inputs["name"] == made["spec"].ha.images.haproxy
        container = by_name(run, f"haproxy-{host}", "Container")
        assert container.inputs["healthcheck"]["tests"] == [
            "CMD", PROBE, "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{STATS_PORT}/healthz"]
        assert "/ceres-probe" in [v["containerPath"] for v in container.inputs["volumes"]]


def test_haproxy_config_routes_postgres_and_redis_and_reads_the_password_from_env(pair):
    run, made = pair
    for host in INSTANCES:
        container = by_name(run, f"haproxy-{host}", "Container")
        cfg = uploads(container)[HAPROXY_CFG]
        assert "listen postgres_primary" in cfg and "listen postgres_replicas" in cfg
        for name, address in PG_MEMBERS:
            assert f"server {name} {address}:5432 check port 8008 addr {address}" in cfg
        assert REDIS_SECTION.strip() in cfg and f"${{{PASSWORD_ENV}}}" in cfg
        assert container.inputs["envs"] == [SECRET_MARK]
        password = unwrap(by_name(run, "redis-haproxy-check", "RandomPassword").state["result"])
        assert unwrap(container.state["envs"]) == [f"{PASSWORD_ENV}={password}"]


def test_without_redis_the_config_has_no_redis_listener_and_no_env():
    run, made = build(with_redis=False)
    container = by_name(run, "haproxy-node1", "Container")
    assert "redis_primary" not in uploads(container)[HAPROXY_CFG]
    assert not container.inputs["envs"]
    assert made["haproxy"].redis_endpoint is None


def test_keepalived_pair_has_one_primary_and_peers_that_point_at_each_other(pair):
    run, made = pair
    confs = {host: uploads(by_name(run, f"keepalived-{host}", "Container"))[KEEPALIVED_CONF] for host in INSTANCES}
    assert f"priority {PRIMARY_PRIORITY}" in confs["node1"] and "state MASTER" in confs["node1"]
    assert f"priority {BACKUP_PRIORITY}" in confs["node2"] and "state BACKUP" in confs["node2"]
    for host, peer in (("node1", "node2"), ("node2", "node1")):
        assert f"unicast_src_ip {INSTANCES[host]}" in confs[host]
        assert f"unicast_peer {{\n        {INSTANCES[peer]}\n    }}" in confs[host]
        assert "interface eth0" in confs[host] and "10.0.0.100/24" in confs[host]
    assert [i.primary for i in made["haproxy"].instances] == [True, False]


def test_keepalived_is_built_on_its_host_with_the_check_script_baked_in_root_owned(pair):
    run, made = pair
    for host in INSTANCES:
        image = by_name(run, f"keepalived-{host}-image", "Image")
        assert image.inputs["imageName"].startswith("ceres-prod-keepalived:")
        container = by_name(run, f"keepalived-{host}", "Container")
        assert container.inputs["capabilities"]["adds"] == ["NET_ADMIN", "NET_RAW", "NET_BROADCAST"]
        assert container.inputs["command"][:4] == ["keepalived", "--dont-fork", "--log-console", "--vrrp"]
        assert container.inputs["healthcheck"]["tests"] == ["CMD-SHELL", f'kill -0 "$(cat {VRRP_PID})"']
        assert by_name(run, f"haproxy-{host}", "Container").urn in container.dependencies
    context = Path(by_name(run, "keepalived-node1-image", "Image").inputs["build"]["context"])
    assert (context / "check_haproxy.sh").read_text() == check_haproxy_script(made["haproxy"].instances[0].keepalived_settings)
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.startswith(f"FROM {made['spec'].ha.images.keepalived_base}\n")
    assert "apt-get install -y --no-install-recommends keepalived wget" in dockerfile
    assert "chown root:root /etc/keepalived/check_haproxy.sh && chmod 0755 /etc/keepalived/check_haproxy.sh" in dockerfile


def test_endpoints_metrics_and_the_vip_edge(pair):
    run, made = pair
    haproxy = made["haproxy"]
    assert haproxy.primary_endpoint == f"10.0.0.100:{PRIMARY_PORT}"
    assert haproxy.redis_endpoint == f"10.0.0.100:{REDIS_PRIMARY_PORT}"
    assert haproxy.metrics_targets == ["10.0.0.11:8404", "10.0.0.12:8404"] and haproxy.metrics_path == "/metrics"
    edge = by_name(run, "ha-proxy-vip", "HaEdge")
    assert edge.parent == by_name(run, "haproxy", "services:HAProxy").urn
    assert edge.inputs["target"] == "keepalived"


def test_no_secret_in_any_plain_input(pair):
    run, _ = pair
    assert_no_plain_secrets(run)
    for container in of_type(run, "Container"):
        assert "offline-" not in json.dumps([u["content"] for u in unwrap(container.state).get("uploads", [])])


def test_fails_without_a_virtual_ip_or_a_second_host_address():
    # The loader already demands both when ha.enabled; the pair says so itself when built anyway.
    with pytest.raises(Exception, match="virtual_ip is not set"):
        build(ha={**_ha(), "enabled": False, "virtual_ip": None})
    with pytest.raises(Exception, match="node2 has no `address`"):
        build(ha={**_ha(), "enabled": False}, hosts=[{k: v for k, v in h.items() if not (h["name"] == "node2" and k == "address")} for h in _hosts()])


def test_fails_on_a_redis_section_without_its_check_password():
    config, secret_keys = stack_config("prod")

    def program() -> dict:
        spec = load_spec("prod", config, set(secret_keys))
        hosts = [DockerHostComponent(host, "ceres-prod") for host in spec.hosts_with("ha")]
        HAProxy(spec, hosts, postgres_members=PG_MEMBERS, redis_section=REDIS_SECTION)
        return {}

    with pytest.raises(Exception, match="go together"):
        OfflineEngine("prod", config, secret_keys).run(program)


def _ha() -> dict:
    return json.loads(stack_config("prod")[0]["ceres:ha"])


def _hosts() -> list[dict]:
    return json.loads(stack_config("prod")[0]["ceres:hosts"])


# --- the pair for real: Debian's haproxy and keepalived in two network namespaces -----------------
#
# Each namespace stands in for one HA host: its own `eth0` at the prod address, its own loopback.
# What runs there is what the containers get: the uploaded configs, the check script from the image's
# build context, the keepalived command and both healthcheck commands as recorded (only the
# in-container paths point into a temporary directory).

TIMEOUT = 20
VIP = "10.0.0.100"


def binary(name: str, package: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.fail(f"`{name}` not found: apt-get install -y {package}")
    return path


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.2)


class Host:
    """One namespace standing in for HA host `name`, running that instance's HAProxy and Keepalived."""

    def __init__(self, name: str, namespace: str, workdir: Path, run: OfflineRun):
        self.name, self.namespace, self.workdir, self.recorded = name, namespace, workdir, run
        self.processes: dict[str, subprocess.Popen] = {}

    def container(self, service: str) -> Recorded:
        return by_name(self.recorded, f"{service}-{self.name}", "Container")

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary("ip", "iproute2"), "netns", "exec", self.namespace, *argv],
                              capture_output=True, text=True, timeout=TIMEOUT)

    def start(self, service: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.workdir / f"{service}.log", "ab") as log:
            self.processes[service] = subprocess.Popen(
                [binary("ip", "iproute2"), "netns", "exec", self.namespace, *argv],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})

    def start_haproxy(self) -> None:
        container = self.container("haproxy")
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(uploads(container)[HAPROXY_CFG])
        env = dict(entry.split("=", 1) for entry in unwrap(container.state["envs"]))
        self.start("haproxy", [binary("haproxy", "haproxy"), "-db", "-f", str(cfg)], env)

    def start_keepalived(self, check_script: str) -> None:
        container = self.container("keepalived")
        script = self.workdir / "check_haproxy.sh"
        script.write_text(check_script)
        script.chmod(0o755)
        conf = self.workdir / "keepalived.conf"
        conf.write_text(uploads(container)[KEEPALIVED_CONF].replace(CHECK_SCRIPT, str(script)))
        argv = [arg.replace(KEEPALIVED_CONF, str(conf)).replace(VRRP_PID, str(self.workdir / "vrrp.pid"))
                for arg in container.inputs["command"]]
        # The parent's pid file too, which would otherwise land in this machine's /run.
        self.start("keepalived", [binary("keepalived", "keepalived"), *argv[1:], f"--pid={self.workdir / 'keepalived.pid'}"], {})

    def healthy(self, service: str) -> bool:
        """The container's healthcheck command run here: the probe busybox is Debian's, paths are ours."""
        kind, *argv = self.container(service).inputs["healthcheck"]["tests"]
        if kind == "CMD-SHELL":
            argv = ["sh", "-c", argv[0].replace(VRRP_PID, str(self.workdir / "vrrp.pid"))]
        return self.run(*[binary("busybox", "busybox") if arg == PROBE else arg for arg in argv]).returncode == 0

    def holds_vip(self) -> bool:
        return f" {VIP}/" in self.run(binary("ip", "iproute2"), "-4", "-o", "addr", "show", "dev", "eth0").stdout

    def stop(self, service: str) -> None:
        process = self.processes.pop(service, None)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TIMEOUT)


@pytest.fixture
def namespaces(pair) -> Iterator[dict[str, Host]]:
    """Two namespaces joined by a veth pair (each end named `eth0`), torn down even on failure."""
    ip = binary("ip", "iproute2")
    run, _ = pair
    made: dict[str, Host] = {}
    try:
        for name, address in INSTANCES.items():
            # Root-owned and open to all: keepalived runs its check script as `nobody`, and only if
            # root owns the script and every directory above it.
            workdir = Path(tempfile.mkdtemp(prefix=f"ceres-ha-{name}-", dir="/tmp"))
            workdir.chmod(0o755)
            made[name] = Host(name, f"ceres-ha-{os.getpid()}-{name}", workdir, run)
            subprocess.run([ip, "netns", "add", made[name].namespace], check=True, timeout=TIMEOUT)
        subprocess.run([ip, "link", "add", "ceres-ha-a", "netns", made["node1"].namespace, "type", "veth",
                        "peer", "name", "ceres-ha-b", "netns", made["node2"].namespace], check=True, timeout=TIMEOUT)
        for name, end in (("node1", "ceres-ha-a"), ("node2", "ceres-ha-b")):
            for argv in (["link", "set", end, "name", "eth0"], ["addr", "add", f"{INSTANCES[name]}/24", "dev", "eth0"],
                         ["link", "set", "eth0", "up"], ["link", "set", "lo", "up"]):
                subprocess.run([ip, "-n", made[name].namespace, *argv], check=True, timeout=TIMEOUT)
        yield made
    finally:
        for host in made.values():
            host.stop("keepalived")
            host.stop("haproxy")
            subprocess.run([ip, "netns", "del", host.namespace], timeout=TIMEOUT)
            shutil.rmtree(host.workdir, ignore_errors=True)


def test_the_vip_sits_on_the_primary_and_follows_a_live_haproxy(pair, namespaces):
    run, _ = pair
    context = Path(by_name(run, "keepalived-node1-image", "Image").inputs["build"]["context"])
    check_script = (context / "check_haproxy.sh").read_text()
    node1, node2 = namespaces["node1"], namespaces["node2"]
    for host in (node1, node2):
        host.start_haproxy()
        wait_until(lambda: host.healthy("haproxy"), f"haproxy on {host.name} passes its healthcheck")
        host.start_keepalived(check_script)
        wait_until(lambda: host.healthy("keepalived"), f"keepalived on {host.name} passes its healthcheck")
    wait_until(lambda: node1.holds_vip() and not node2.holds_vip(), "the VIP on the primary (node1) only")

    node1.stop("haproxy")
    wait_until(lambda: node2.holds_vip() and not node1.holds_vip(), "the VIP moved to node2 once node1's HAProxy stopped")
    assert node1.healthy("keepalived"), "keepalived on node1 gave the VIP away but should keep running"

    node1.start_haproxy()
    wait_until(lambda: node1.holds_vip() and not node2.holds_vip(), "the VIP back on node1 once its HAProxy answers")
