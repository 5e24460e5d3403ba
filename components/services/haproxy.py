"""HAProxy + Keepalived: the data tier's front door on the prod HA hosts, at one virtual IP.

Two instances, on the first two HA hosts, each an HAProxy (PostgreSQL leader 5000, replicas 5001,
Redis primary 6380 when given, stats/metrics 8404) and a Keepalived that holds the virtual IP while
its local HAProxy answers. Both run on the host's network (VRRP and the VIP live on the host's
interface; HAProxy binds 0.0.0.0, so it also answers on the VIP once it arrives) and publish nothing:
the hosts' firewall keeps these ports on the private segment.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import pulumi

from components.base import Service
from components.config.haproxy import HEALTH_PATH, METRICS_PATH, PRIMARY_PORT, STATS_PORT, HaproxySettings, haproxy_cfg
from components.config.haproxy_redis import PASSWORD_ENV, REDIS_PRIMARY_PORT
from components.config.keepalived import CHECK_SCRIPT, KeepalivedSettings, check_haproxy_script, keepalived_conf
from components.config.patroni import POSTGRES_PORT, RESTAPI_PORT, Address, PatroniMember
from components.config.prometheus import ScrapeJob
from components.container import KEEP_RUNNING_ON_RESTORE, Healthcheck, ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.images import build_on_host
from components.integrations.ha import HaEdge
from stacks.spec import ServiceSpec, StackSpec

# Where the official image's CMD reads its config.
HAPROXY_CFG = "/usr/local/etc/haproxy/haproxy.cfg"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
# Named explicitly so the healthcheck does not depend on the package's default paths.
VRRP_PID = "/run/keepalived-vrrp.pid"
# Neither has a spec entry of its own: both are small, fixed-size processes.
HAPROXY_MEMORY_MB = 256
KEEPALIVED_MEMORY_MB = 64
INSTANCES = 2


def keepalived_dockerfile(base_image: str) -> str:
    """Keepalived from Debian on the pinned base. The packages are not version-pinned: Debian's
    mirror keeps only the current bookworm build, so a pin would break on its next security update.
    The check script is baked in (root-owned, 0755, in root's /etc/keepalived), which is what
    `enable_script_security` demands and what a container upload cannot promise."""
    return "\n".join([
        f"FROM {base_image}",
        # wget: the check script's client (it runs as `nobody`).
        "RUN apt-get update && apt-get install -y --no-install-recommends keepalived wget"
        " && rm -rf /var/lib/apt/lists/*",
        f"COPY check_haproxy.sh {CHECK_SCRIPT}",
        f"RUN chown root:root {CHECK_SCRIPT} && chmod 0755 {CHECK_SCRIPT}",
        "",
    ])


class HAProxy(Service):
    """The pair: `primary_endpoint` (PostgreSQL leader) and `redis_endpoint` (Redis primary, None
    unless `redis_section` is given) on the virtual IP; `metrics_targets` are each instance's Prometheus
    endpoint (`metrics_path`). `postgres_members` are (Patroni member name, host address) pairs;
    `redis_section` is the rendered Redis-primary listener, whose check logs in with
    `redis_check_password` (a secret, reaching HAProxy only as an environment variable)."""

    def __init__(
        self,
        spec: StackSpec,
        hosts: Sequence[DockerHostComponent],
        *,
        postgres_members: Sequence[tuple[str, str]],
        redis_section: str | None = None,
        redis_check_password: pulumi.Output[str] | None = None,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`after`: what the proxy's backends need before it starts (the Redis cluster), so that
        whoever waits for the proxy waits for them too."""
        if len(hosts) < INSTANCES:
            raise ValueError(f"haproxy: needs {INSTANCES} HA hosts to share the virtual IP, got {len(hosts)}")
        if spec.ha.virtual_ip is None:
            raise ValueError("haproxy: ceres:ha.virtual_ip is not set (a free address on the HA hosts' network)")
        if (redis_section is None) != (redis_check_password is None):
            raise ValueError("haproxy: redis_section and redis_check_password go together")
        pair = list(hosts[:INSTANCES])
        addresses = [host.private_address for host in pair]
        super().__init__("haproxy", pulumi.ResourceOptions.merge(pair[0].placed(), opts))
        vip = spec.ha.virtual_ip
        self.primary_endpoint = f"{vip}:{PRIMARY_PORT}"
        # Only with the Redis listener: without it nothing answers there.
        self.redis_endpoint = f"{vip}:{REDIS_PRIMARY_PORT}" if redis_section is not None else None
        self.metrics_targets = [f"{address}:{STATS_PORT}" for address in addresses]
        self.metrics_path = METRICS_PATH
        cfg = haproxy_cfg(HaproxySettings(
            members=tuple(
                PatroniMember(name, Address(address, POSTGRES_PORT), Address(address, RESTAPI_PORT))
                for name, address in postgres_members
            ),
            extra_sections=(redis_section,) if redis_section is not None else (),
        ))
        envs = [pulumi.Output.concat(f"{PASSWORD_ENV}=", redis_check_password)] if redis_check_password is not None else []
        # The second instance after the first is up with its Keepalived: a changed haproxy.cfg
        # replaces one while the other holds the virtual IP.
        self.instances: list[HAProxyInstance] = []
        for i, host in enumerate(pair):
            previous = [self.instances[-1].keepalived.container] if self.instances else []
            self.instances.append(HAProxyInstance(
                self, spec, host, cfg=cfg, envs=envs, after=[*after, *previous],
                keepalived=KeepalivedSettings(
                    interface=spec.ha.interface,
                    virtual_ip=f"{vip}/{spec.ha.virtual_ip_prefix}",
                    unicast_src_ip=addresses[i],
                    unicast_peer=addresses[1 - i],
                    primary=i == 0,
                ),
            ))
        self.vip_edge = HaEdge("ha-proxy-vip", self, "keepalived", members=addresses)
        self.register_outputs({
            "primaryEndpoint": self.primary_endpoint,
            "redisEndpoint": self.redis_endpoint,
            "metricsTargets": self.metrics_targets,
        })

    def members_scrape_job(self, members: str) -> ScrapeJob:
        """HAProxy's own Prometheus exporter on both instances, at the hosts' addresses."""
        if members != "haproxy":
            raise ValueError(f"HAProxy runs no {members!r} members")
        return ScrapeJob("haproxy", tuple(self.metrics_targets), metrics_path=self.metrics_path)


class HAProxyInstance(pulumi.ComponentResource):
    """One host's HAProxy and Keepalived; everything under it deploys to that host's engine."""

    def __init__(
        self,
        cluster: HAProxy,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        cfg: str,
        envs: Sequence[pulumi.Input[str]],
        keepalived: KeepalivedSettings,
        after: Sequence[pulumi.Resource] = (),
    ):
        name = f"haproxy-{host.host.name}"
        super().__init__("ceres:services:HAProxyInstance", name, None,
                         pulumi.ResourceOptions(parent=cluster, provider=host.provider))
        self.address = keepalived.unicast_src_ip
        self.primary = keepalived.primary
        self.keepalived_settings = keepalived
        self.haproxy = ServiceContainer(
            self,
            name,
            spec=ServiceSpec(enabled=True, image=spec.ha.images.haproxy, memory_mb=HAPROXY_MEMORY_MB),
            host=host,
            labels=KEEP_RUNNING_ON_RESTORE,
            networks=[],
            host_network=True,
            envs=envs,
            files={HAPROXY_CFG: cfg},
            # The official image is Debian slim with no HTTP client (wget is purged after the build):
            # the host's probe busybox asks HAProxy's monitor URI.
            healthcheck=http_check(f"http://127.0.0.1:{STATS_PORT}{HEALTH_PATH}", tool="probe", start_period="10s"),
            depends_on=after,
        )
        self.keepalived = self._keepalived(spec, host, keepalived)
        self.register_outputs({"address": self.address, "primary": self.primary})

    def _keepalived(self, spec: StackSpec, host: DockerHostComponent, settings: KeepalivedSettings) -> ServiceContainer:
        name = f"keepalived-{host.host.name}"
        files = {"Dockerfile": keepalived_dockerfile(spec.ha.images.keepalived_base),
                 "check_haproxy.sh": check_haproxy_script(settings)}
        tag = hashlib.sha256("\0".join(files.values()).encode()).hexdigest()[:12]
        image = build_on_host(self, f"{name}-image", service="keepalived", host=host, tag=tag, files=files)
        return ServiceContainer(
            self,
            name,
            spec=ServiceSpec(enabled=True, image=spec.ha.images.keepalived_base, memory_mb=KEEPALIVED_MEMORY_MB),
            host=host,
            labels=KEEP_RUNNING_ON_RESTORE,
            image=image,
            networks=[],
            host_network=True,
            # VRRP adverts need raw sockets; moving the VIP and its gratuitous ARP need NET_ADMIN.
            capabilities=["NET_ADMIN", "NET_RAW", "NET_BROADCAST"],
            command=["keepalived", "--dont-fork", "--log-console", "--vrrp",
                     f"--use-file={KEEPALIVED_CONF}", f"--vrrp_pid={VRRP_PID}"],
            files={KEEPALIVED_CONF: keepalived_conf(settings)},
            # No HTTP here: healthy while the VRRP child (which holds or watches the VIP) runs.
            healthcheck=Healthcheck(["CMD-SHELL", f'kill -0 "$(cat {VRRP_PID})"'], start_period="10s"),
            # Its check fails until the local HAProxy answers: starting first would only hand the VIP away.
            depends_on=[self.haproxy.container],
        )
