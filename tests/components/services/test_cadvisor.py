"""cAdvisor under the recording engine: read-only host mounts, light metrics, monitoring only."""

from __future__ import annotations

from components.services.cadvisor import CAdvisor
from tests.support import assert_production_shape, build_named, by_name


def build():
    return build_named("cadvisor", CAdvisor)


def test_container_has_the_production_shape():
    run, built = build()
    spec = built["spec"].services.cadvisor
    container = assert_production_shape(run, "cadvisor", image=spec.image, memory=spec.memory_mb)
    assert container.inputs["healthcheck"]["tests"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost:8080/healthz"]
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-monitoring"]
    assert built["cadvisor"].metrics_target == "cadvisor:8080"


def test_host_state_is_mounted_read_only_and_nothing_else():
    run, _ = build()
    mounts = by_name(run, "cadvisor", "Container").inputs["volumes"]
    assert {m["hostPath"]: m["containerPath"] for m in mounts} == {
        "/": "/rootfs", "/var/run": "/var/run", "/sys": "/sys", "/var/lib/docker": "/var/lib/docker", "/dev/disk": "/dev/disk",
    }
    assert all(m["readOnly"] is True for m in mounts)


def test_only_docker_containers_and_light_metrics_are_collected():
    run, _ = build()
    command = by_name(run, "cadvisor", "Container").inputs["command"]
    assert "--docker_only=true" in command
    assert "--enable_metrics=cpu,memory,network,diskIO,oom_event" in command
    assert "--housekeeping_interval=30s" in command
    assert "--store_container_labels=false" in command
    assert "--whitelisted_container_labels=io.ceres.service,io.ceres.stack" in command


def test_it_reads_oom_kills_from_the_kernel_log_with_the_privileges_its_readme_gives():
    run, _ = build()
    container = by_name(run, "cadvisor", "Container")
    assert container.inputs["privileged"] is True
    assert [d["hostPath"] for d in container.inputs["devices"]] == ["/dev/kmsg"]
