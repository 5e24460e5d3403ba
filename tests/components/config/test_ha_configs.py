"""Each rendered HA config through its real validator.

- patroni.yml: `patroni --validate-config` (Debian `patroni` 3.0.2). Its validator resolves hosts,
  checks `bin_dir` exists, refuses loopback-looking connect addresses (the string "127.0.0.1") and
  connects to etcd, so the production shape is rendered with 127.0.0.2-4 as member hosts, the
  installed PostgreSQL's bin dir, and a real etcd started from `etcd_args` (which also proves
  every etcd flag is accepted by Debian's `etcd-server` 3.4).
- haproxy.cfg: `haproxy -c -f` (Debian `haproxy` 2.6), with and without an extra section.
- keepalived.conf: `keepalived -t -f` (Debian `keepalived` 2.2.7). Its -t ends by SIGTERMing itself
  whatever it found, so success is "nothing reported"; a broken config proves problems are reported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from components.config.haproxy import HaproxySettings, haproxy_cfg
from components.config.keepalived import CHECK_SCRIPT, KeepalivedSettings, check_haproxy_script, keepalived_conf
from components.config.patroni import (
    Address,
    EtcdMember,
    EtcdSettings,
    PatroniMember,
    PatroniSettings,
    Timings,
    etcd_args,
    patroni_yml,
)
from tests.components.ha_cluster import Missing
from tests.components.real_processes import postgres_bindir
from tests.support import free_port

TIMEOUT = 30
MEMBERS = tuple(PatroniMember(f"pg-{i}", Address(f"127.0.0.{i + 1}", 5432), Address(f"127.0.0.{i + 1}", 8008)) for i in (1, 2, 3))


def binary(name: str, package: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.fail(f"`{name}` not found: apt-get install -y {package}")
    return path


# --- etcd + patroni ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdMember]:
    member = EtcdMember("etcd-1", "127.0.0.1", free_port(), free_port())
    settings = EtcdSettings(cluster=(member,), member=member.name, cluster_token="ceres-validate",
                            data_dir=str(tmp_path_factory.mktemp("etcd") / "data"), listen_host="127.0.0.1")
    process = subprocess.Popen([binary("etcd", "etcd-server"), *etcd_args(settings)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"{member.client_url}/health", timeout=2) as response:
                    if b'"true"' in response.read():
                        break
            except OSError:
                time.sleep(0.2)
        assert process.poll() is None, f"etcd refused the rendered flags:\n{process.stderr.read().decode()}"
        yield member
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)


def validation_settings(etcd_member: EtcdMember, member: PatroniMember = MEMBERS[0], **overrides) -> PatroniSettings:
    try:
        bin_dir = str(postgres_bindir(("postgres", "initdb", "pg_ctl", "psql")))
    except Missing as missing:
        pytest.fail(str(missing))
    defaults = dict(scope="ceres", member=member, etcd=(etcd_member.client_address,), memory_mb=1024,
                    consumers=("gitea", "keycloak", "nextcloud"), monitoring=True, bin_dir=bin_dir)
    return PatroniSettings(**{**defaults, **overrides})


def validate_patroni(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "patroni.yml"
    path.write_text(text)
    return subprocess.run([binary("patroni", "patroni"), "--validate-config", str(path)],
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_each_members_patroni_yml_passes_patroni_validate_config(etcd: EtcdMember, member: PatroniMember, tmp_path: Path) -> None:
    result = validate_patroni(patroni_yml(validation_settings(etcd, member)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_patroni_validator_catches_what_we_would_get_wrong(etcd: EtcdMember, tmp_path: Path) -> None:
    # The validator is not a rubber stamp: an unreachable etcd is reported.
    unreachable = validation_settings(etcd, etcd=(Address("127.0.0.1", free_port()),))
    result = validate_patroni(patroni_yml(unreachable), tmp_path)
    assert result.returncode != 0 and "not reachable" in result.stdout + result.stderr


def test_patroni_yml_holds_no_password_and_ships_the_timings(etcd: EtcdMember) -> None:
    text = patroni_yml(validation_settings(etcd))
    assert "password:" not in text.lower()
    assert "ttl: 20" in text and "loop_wait: 2" in text and "retry_timeout: 8" in text
    assert "synchronous_mode: true" in text and "synchronous_mode_strict: false" in text
    assert "use_pg_rewind: true" in text
    # The superuser has no network rule: only `local ... peer`.
    assert "host all postgres" not in text and "local   all       postgres          peer" in text


@pytest.mark.parametrize("ttl, loop_wait, retry_timeout", [(10, 2, 3), (20, 10, 10), (20, 0, 8), (20, 2, 2)])
def test_fails_on_timings_patroni_would_silently_change(ttl: int, loop_wait: int, retry_timeout: int) -> None:
    with pytest.raises(ValueError):
        Timings(ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout)


def test_fails_on_a_consumer_that_cannot_be_a_postgres_role(etcd: EtcdMember) -> None:
    with pytest.raises(ValueError):
        validation_settings(etcd, consumers=("Bad-Name",))


def test_etcd_args_name_the_whole_cluster() -> None:
    cluster = tuple(EtcdMember(f"etcd-{i}", f"etcd-{i}") for i in (1, 2, 3))
    args = etcd_args(EtcdSettings(cluster=cluster, member="etcd-2", cluster_token="ceres"))
    assert "--initial-cluster=etcd-1=http://etcd-1:2380,etcd-2=http://etcd-2:2380,etcd-3=http://etcd-3:2380" in args
    assert "--advertise-client-urls=http://etcd-2:2379" in args
    with pytest.raises(ValueError):
        EtcdSettings(cluster=cluster[:2], member="etcd-1", cluster_token="ceres")


# --- haproxy -------------------------------------------------------------------------------------


def haproxy_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return subprocess.run([binary("haproxy", "haproxy"), "-c", "-f", str(path)], capture_output=True, text=True, timeout=TIMEOUT)


def test_haproxy_cfg_passes_haproxy_c(tmp_path: Path) -> None:
    result = haproxy_check(haproxy_cfg(HaproxySettings(members=MEMBERS)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout + result.stderr


def test_haproxy_cfg_with_an_extra_section_passes_and_keeps_it(tmp_path: Path) -> None:
    redis = "listen redis_primary\n    bind 0.0.0.0:6379\n    server redis-1 127.0.0.2:6379 check\n"
    text = haproxy_cfg(HaproxySettings(members=MEMBERS, extra_sections=(redis,)))
    assert text.endswith(redis)
    result = haproxy_check(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_routes_writes_by_patronis_primary_check_and_reads_by_replica() -> None:
    text = haproxy_cfg(HaproxySettings(members=MEMBERS))
    primary, replicas = text.split("listen postgres_primary")[1].split("listen postgres_replicas")
    assert "uri /primary" in primary and "uri /replica" in replicas
    for section in (primary, replicas):
        assert "http-check expect status 200" in section and "on-marked-down shutdown-sessions" in section
        assert all(f"server {m.name} {m.postgres} check port 8008" in section for m in MEMBERS)


def test_haproxy_settings_fail_on_clashing_ports() -> None:
    with pytest.raises(ValueError):
        HaproxySettings(members=MEMBERS, primary_port=5000, replica_port=5000)


# --- keepalived ----------------------------------------------------------------------------------


def network_interface() -> str:
    names = sorted(n for n in os.listdir("/sys/class/net") if n != "lo" and not n.startswith(("ifb", "docker", "veth")))
    if not names:
        pytest.fail("no non-loopback network interface to point keepalived at")
    return names[0]


def keepalived_check(settings: KeepalivedSettings, tmp_path: Path, extra: str = "") -> str:
    script = tmp_path / "check_haproxy.sh"
    script.write_text(check_haproxy_script(settings))
    script.chmod(0o755)
    # Script security wants root to own the script and every directory above it.
    os.chown(tmp_path, 0, 0)
    tmp_path.chmod(0o755)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(keepalived_conf(settings).replace(CHECK_SCRIPT, str(script)) + extra)
    result = subprocess.run([binary("keepalived", "keepalived"), "-t", "-f", str(conf)],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode in (0, -15, 143), f"keepalived -t crashed: {result.returncode}\n{result.stderr}"
    return (result.stdout + result.stderr).strip()


@pytest.mark.parametrize("primary", [True, False], ids=["primary", "backup"])
def test_keepalived_conf_passes_keepalived_t(primary: bool, tmp_path: Path) -> None:
    settings = KeepalivedSettings(interface=network_interface(), virtual_ip="10.99.0.100/24",
                                  unicast_src_ip="10.99.0.1", unicast_peer="10.99.0.2", primary=primary)
    assert keepalived_check(settings, tmp_path) == ""


def test_keepalived_t_reports_a_broken_config(tmp_path: Path) -> None:
    settings = KeepalivedSettings(interface=network_interface(), virtual_ip="10.99.0.100/24",
                                  unicast_src_ip="10.99.0.1", unicast_peer="10.99.0.2", primary=True)
    assert "Unknown keyword" in keepalived_check(settings, tmp_path, extra="vrrp_instance x {\n    not_a_keyword 1\n}\n")


def test_keepalived_conf_has_no_password_and_only_unicast_peers() -> None:
    settings = KeepalivedSettings(interface="eth0", virtual_ip="10.99.0.100/24",
                                  unicast_src_ip="10.99.0.1", unicast_peer="10.99.0.2", primary=True)
    text = keepalived_conf(settings)
    assert "auth_pass" not in text and "authentication" not in text
    assert "vrrp_version 3" in text and "check_unicast_src" in text and "10.99.0.2" in text
    assert "priority 150" in text and "priority 100" in keepalived_conf(
        KeepalivedSettings(interface="eth0", virtual_ip="10.99.0.100/24", unicast_src_ip="10.99.0.2",
                           unicast_peer="10.99.0.1", primary=False))
    with pytest.raises(ValueError):
        KeepalivedSettings(interface="eth0", virtual_ip="10.99.0.100", unicast_src_ip="10.99.0.1",
                           unicast_peer="10.99.0.2", primary=True)
