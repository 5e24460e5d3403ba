"""Keepalived: two HAProxy hosts share one virtual IP; it sits on whichever has a live HAProxy.

Pure function of typed inputs; `tests/components/config/test_ha_configs.py` runs `keepalived -t` on it.

No VRRP password. VRRPv2's `auth_pass` travels in clear text in every advertisement (and is cut to
8 characters), so it keeps nothing out that can see the traffic, while it would put a secret in a
plain config file. Instead: VRRP version 3 (which has no authentication at all), unicast to the
one named peer, and `check_unicast_src` so adverts from any other address are dropped. What guards
the VIP is the network (the hosts' private segment), not a shared string.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from components.config.haproxy import HEALTH_PATH, STATS_PORT

_INTERFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
# The backup's priority: the primary's is higher, and a failing check takes away more than the gap.
BACKUP_PRIORITY = 100
PRIMARY_PRIORITY = 150
CHECK_WEIGHT = -60
CHECK_SCRIPT = "/etc/keepalived/check_haproxy.sh"


@dataclass(frozen=True)
class KeepalivedSettings:
    interface: str
    # With its prefix, e.g. "10.0.0.100/24".
    virtual_ip: str
    # This host's address on `interface` and the other HAProxy host's.
    unicast_src_ip: str
    unicast_peer: str
    primary: bool
    # Same on both hosts, unique among VRRP groups on the segment (1..255).
    virtual_router_id: int = 51
    haproxy_health_url: str = f"http://127.0.0.1:{STATS_PORT}{HEALTH_PATH}"

    def __post_init__(self) -> None:
        if not _INTERFACE.match(self.interface):
            raise ValueError(f"interface {self.interface!r} is not a network interface name")
        ipaddress.ip_interface(self.virtual_ip)
        if "/" not in self.virtual_ip:
            raise ValueError(f"virtual_ip {self.virtual_ip!r} needs its prefix length, e.g. 10.0.0.100/24")
        for address in (self.unicast_src_ip, self.unicast_peer):
            ipaddress.ip_address(address)
        if self.unicast_src_ip == self.unicast_peer:
            raise ValueError("unicast_src_ip and unicast_peer must be the two different HAProxy hosts")
        if not 1 <= self.virtual_router_id <= 255:
            raise ValueError(f"virtual_router_id={self.virtual_router_id}: use 1..255")


def check_haproxy_script(settings: KeepalivedSettings) -> str:
    """The vrrp_script body (mode 0755, owned by root): HAProxy's monitor URI answers 200.

    HAProxy runs in its own container on the host network, so the check is over loopback rather than
    a process lookup. Only busybox/coreutils tools: the keepalived image need not ship curl.
    """
    return "\n".join([
        "#!/bin/sh",
        "# Rendered by CERES: exit 0 while the local HAProxy answers its health URI.",
        f"exec wget -q -T 1 -O /dev/null {settings.haproxy_health_url}",
        "",
    ])


def keepalived_conf(settings: KeepalivedSettings) -> str:
    state, priority = ("MASTER", PRIMARY_PRIORITY) if settings.primary else ("BACKUP", BACKUP_PRIORITY)
    return "\n".join([
        "# Rendered by CERES: the virtual IP follows a live HAProxy.",
        "global_defs {",
        "    router_id ceres_haproxy",
        # Scripts run as this unprivileged user, and only if root owns them and their directory.
        "    script_user nobody",
        "    enable_script_security",
        "    vrrp_version 3",
        "}",
        "",
        "vrrp_script chk_haproxy {",
        f"    script \"{CHECK_SCRIPT}\"",
        "    interval 1",
        "    timeout 2",
        "    fall 2",
        "    rise 2",
        f"    weight {CHECK_WEIGHT}",
        "}",
        "",
        "vrrp_instance haproxy_vip {",
        f"    state {state}",
        f"    interface {settings.interface}",
        f"    virtual_router_id {settings.virtual_router_id}",
        f"    priority {priority}",
        "    advert_int 1",
        f"    unicast_src_ip {settings.unicast_src_ip}",
        "    unicast_peer {",
        f"        {settings.unicast_peer}",
        "    }",
        "    check_unicast_src",
        "    virtual_ipaddress {",
        f"        {settings.virtual_ip}",
        "    }",
        "    track_script {",
        "        chk_haproxy",
        "    }",
        "}",
        "",
    ])
