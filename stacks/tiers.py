"""Defaults shared by every stack, and the tier overlays that make dev and prod.

A stack's effective config is `BASE`, then the overlay of its tier, then what the
stack file sets (`Pulumi.<stack>.yaml`), merged key by key. Lists replace, maps merge.
"""

from __future__ import annotations

import copy
from typing import Any


def _service(image: str, memory_mb: int, subdomain: str | None = None) -> dict[str, Any]:
    service: dict[str, Any] = {"enabled": True, "image": image, "memory_mb": memory_mb}
    if subdomain:
        service["subdomain"] = subdomain
    return service


# Versions are pinned; bump them here (or per stack) after re-checking INTEGRATION_FACTS.
BASE: dict[str, Any] = {
    "services": {
        "keycloak": _service("quay.io/keycloak/keycloak:26.3.3", 1024, "keycloak"),
        "nextcloud": _service("nextcloud:31.0.8-apache", 1024, "nextcloud"),
        "gitea": _service("gitea/gitea:1.24.6", 512, "gitea") | {"organization": "ceres"},
        # 10.11 is the last ESR whose GitLab SSO works in Team Edition (Mattermost 11 moved it to Professional).
        "mattermost": _service("mattermost/mattermost-team-edition:10.11.2", 1024, "mattermost")
        | {"edition": "team"},
        "redmine": _service("redmine:6.0.6", 512, "redmine"),
        "wikijs": _service("ghcr.io/requarks/wiki:2.5.308", 512, "wikijs"),
        "postgres": _service("postgres:17.6-bookworm", 1024),
        "redis": _service("redis:7.4.6-bookworm", 256),
        "grafana": _service("grafana/grafana:12.1.1", 512, "grafana"),
        "prometheus": _service("prom/prometheus:v3.5.0", 1024, "prometheus"),
        "alertmanager": _service("prom/alertmanager:v0.28.1", 128, "alertmanager"),
        "loki": _service("grafana/loki:3.5.3", 512),
        "alloy": _service("grafana/alloy:v1.10.2", 256),
        "tempo": _service("grafana/tempo:2.8.2", 512),
        "otel_collector": _service("otel/opentelemetry-collector-contrib:0.132.0", 256),
        "cadvisor": _service("ghcr.io/google/cadvisor:v0.54.1", 256),
        "postgres_exporter": _service("quay.io/prometheuscommunity/postgres-exporter:v0.17.1", 64),
        "redis_exporter": _service("oliver006/redis_exporter:v1.75.0", 64),
        # 2.11 fixes forward_auth passing a client's own identity header through (GHSA-7r4p-vjf4-gxv4).
        "caddy": _service("caddy:2.11.7", 256),
        "oauth2_proxy": _service("quay.io/oauth2-proxy/oauth2-proxy:v7.12.0", 64),
        "uptime_kuma": _service("louislam/uptime-kuma:1.23.16", 256, "status"),
        "portainer": _service("portainer/portainer-ce:2.33.1", 256, "portainer"),
        "backup": _service("restic/restic:0.18.0", 512),
        # The repo sync worker's base: CERES adds git and its program (components/config/repo_sync.py).
        "repo_sync": _service("python:3.13.7-alpine3.22", 128),
    },
    "ha": {
        "enabled": False,
        "etcd_members": 3,
        "postgres_members": 3,
        "redis_sentinels": 3,
        "synchronous_mode": True,
        "images": {
            "patroni": "4.0.7",
            "etcd": "quay.io/coreos/etcd:v3.5.21",
            "haproxy": "haproxy:3.0.11",
            "keepalived_base": "debian:bookworm-20250908-slim",
        },
    },
    "chat": {
        "team": "ceres",
        "channels": {"dev": "dev", "projects": "projects", "ops": "ops", "alerts": "alerts", "files": "files"},
    },
    "backup": {
        "schedule": "0 3 * * *",
        "keep_daily": 7,
        "keep_weekly": 4,
        "keep_monthly": 6,
        # Prod's cluster: a full backup weekly, a differential daily, two weeks reachable.
        "point_in_time": {"full_every_days": 7, "diff_every_hours": 24, "retention_full": 2, "path": "/pgbackrest"},
    },
    "sso": {"realm": "ceres", "admin_group": "ceres-admins", "user_group": "ceres-users"},
    "integrations": {},
}

OVERLAYS: dict[str, dict[str, Any]] = {
    "dev": {
        "tls": {"mode": "internal"},
        "hosts": [{"name": "local", "url": "unix:///var/run/docker.sock", "roles": ["apps"]}],
        "backup": {"repository": "/var/backups/ceres"},
    },
    "prod": {
        # Prod must name its own ACME e-mail and hosts: there is no safe default for either.
        "tls": {"mode": "acme"},
        "ha": {"enabled": True},
    },
}

TIERS: tuple[str, ...] = tuple(OVERLAYS)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base`: maps merge key by key, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def effective_config(tier: str, stack_settings: dict[str, Any]) -> dict[str, Any]:
    """BASE, then the tier overlay, then the stack's own settings."""
    return merge(merge(BASE, OVERLAYS[tier]), {**stack_settings, "tier": tier})
