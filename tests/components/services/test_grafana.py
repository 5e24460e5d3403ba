"""Grafana under the recording engine: public URL, PostgreSQL or SQLite, secrets as files."""

from __future__ import annotations


from components.services.grafana import Grafana
from components.services.postgres import PostgreSQL
from tests.support import assert_no_plain_secrets, assert_production_shape, build_named, by_name, of_type


def build(with_postgres: bool = True):
    return build_named("grafana", lambda spec, host: Grafana(
        spec, host, postgres=PostgreSQL(spec.services.postgres, host, ("grafana",)) if with_postgres else None))


def envs(run) -> list[str]:
    return by_name(run, "grafana", "Container").inputs["envs"]


def networks(run) -> list[str]:
    return [n["name"] for n in by_name(run, "grafana", "Container").inputs["networksAdvanced"]]


def test_container_has_the_production_shape():
    run, built = build()
    spec = built["spec"].services.grafana
    container = assert_production_shape(run, "grafana", image=spec.image, memory=spec.memory_mb)
    assert container.inputs["healthcheck"]["tests"] == ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://localhost:3000/api/health"]
    assert container.inputs["volumes"] == [{"containerPath": "/var/lib/grafana", "volumeName": "ceres-dev-grafana-data"}]


def test_configured_for_its_public_url_behind_the_proxy():
    run, built = build()
    grafana = built["grafana"]
    assert grafana.url == "https://grafana.ceres.localhost"
    assert grafana.upstream == "grafana:3000" and grafana.internal_url == "http://grafana:3000"
    assert grafana.admin_username == "admin" and "GF_SECURITY_ADMIN_USER=admin" in envs(run)
    assert {"GF_SERVER_ROOT_URL=https://grafana.ceres.localhost/", "GF_SECURITY_COOKIE_SECURE=true",
            "GF_USERS_ALLOW_SIGN_UP=false", "GF_ANALYTICS_REPORTING_ENABLED=false"} <= set(envs(run))


def test_on_postgres_it_uses_its_own_database_edge_and_waits_for_it():
    run, _ = build()
    edge = by_name(run, "db-grafana", "DatabaseEdge")
    assert edge.parent == by_name(run, "grafana", "ceres:services:Grafana").urn
    assert {"GF_DATABASE_TYPE=postgres", "GF_DATABASE_HOST=postgres:5432", "GF_DATABASE_NAME=grafana",
            "GF_DATABASE_USER=grafana", "GF_DATABASE_PASSWORD__FILE=/etc/grafana/secrets/database_password"} <= set(envs(run))
    assert networks(run) == ["ceres-dev-edge", "ceres-dev-monitoring", "ceres-dev-data"]
    provisioning = by_name(run, "postgres-grafana-database", "Command")
    assert provisioning.urn in by_name(run, "grafana", "Container").dependencies


def test_without_postgres_it_falls_back_to_sqlite_off_the_data_network():
    run, _ = build(with_postgres=False)
    assert "GF_DATABASE_TYPE=sqlite3" in envs(run)
    assert not any(e.startswith("GF_DATABASE_HOST") for e in envs(run))
    assert not of_type(run, "DatabaseEdge")
    assert networks(run) == ["ceres-dev-edge", "ceres-dev-monitoring"]


def test_every_secret_is_a_secret_file_and_never_plain():
    run, _ = build()
    uploads = {u["file"]: u["content"] for u in by_name(run, "grafana", "Container").inputs["uploads"]}
    assert uploads == {
        "/etc/grafana/secrets/admin_password": "[secret]",
        "/etc/grafana/secrets/secret_key": "[secret]",
        "/etc/grafana/secrets/database_password": "[secret]",
    }
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE=/etc/grafana/secrets/admin_password" in envs(run)
    assert "GF_SECURITY_SECRET_KEY__FILE=/etc/grafana/secrets/secret_key" in envs(run)
    for password in of_type(run, "RandomPassword"):
        assert "result" in password.secret_outputs
    assert_no_plain_secrets(run)
