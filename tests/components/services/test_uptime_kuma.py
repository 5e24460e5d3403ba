"""Uptime Kuma under the recording engine: container, networks, and the bootstrap step."""

from __future__ import annotations


from cli.offline import SECRET_MARK
from components.config.uptime_kuma import PASSWORD_ENV, USERNAME_ENV, KumaBootstrap, bootstrap_script
from components.services.uptime_kuma import UptimeKuma
from tests.support import assert_no_plain_secrets, assert_production_shape, build_named, by_name


def build():
    return build_named("kuma", UptimeKuma)


def test_container_has_the_production_shape():
    run, built = build()
    spec = built["spec"].services.uptime_kuma
    container = assert_production_shape(run, "uptime_kuma", image=spec.image, memory=spec.memory_mb)
    assert container.inputs["healthcheck"]["tests"] == ["CMD", "/app/extra/healthcheck"]
    assert container.inputs["healthcheck"]["startPeriod"] == "180s"
    assert container.inputs["volumes"] == [{"containerPath": "/app/data", "volumeName": "ceres-dev-uptime_kuma-data"}]


def test_it_probes_through_the_edge_and_is_scraped_on_monitoring():
    run, built = build()
    names = [n["name"] for n in by_name(run, "uptime_kuma", "Container").inputs["networksAdvanced"]]
    assert names == ["ceres-dev-edge", "ceres-dev-monitoring"]
    kuma = built["kuma"]
    assert kuma.upstream == "uptime-kuma:3001" and kuma.metrics_target == "uptime-kuma:3001"
    assert kuma.internal_url == "http://uptime-kuma:3001"
    assert kuma.url == "https://status.ceres.localhost" and kuma.admin_username == "admin"


def test_bootstrap_runs_in_the_container_after_it_is_healthy_with_secrets_from_env_only():
    run, _ = build()
    step = by_name(run, "uptime_kuma-bootstrap", "Command")
    container = by_name(run, "uptime_kuma", "Container")
    assert container.urn in step.dependencies
    assert step.inputs["create"] == (
        f"docker exec -i -e {USERNAME_ENV} -e {PASSWORD_ENV} ceres-dev-uptime-kuma sh -s"
    )
    assert step.inputs["stdin"] == bootstrap_script(KumaBootstrap(url="http://127.0.0.1:3001"))
    environment = step.inputs["environment"]
    assert environment[PASSWORD_ENV] == SECRET_MARK and environment[USERNAME_ENV] == "admin"
    assert step.secret_outputs == ["stdout"], "the API key it prints is a secret output"


def test_no_secret_is_plain_anywhere():
    run, _ = build()
    assert_no_plain_secrets(run)
