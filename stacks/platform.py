"""The one composition point: a stack's spec in, its whole graph of services and edges out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import catalog
from components.base import IntegrationEdge, Service
from components.docker_host import DockerHostComponent
from components.score import integration_report, is_wanted
from components.services.gitea import Gitea
from components.services.postgres import PostgreSQL
from stacks.load import ConfigError, Problem
from stacks.spec import StackSpec

# Edges this version of CERES can build; the rest of the catalog reports as missing, with the reason.
BUILDABLE_EDGES: frozenset[str] = frozenset({"db-gitea"})


def planned_edges(spec: StackSpec) -> set[str]:
    """The edges this stack gets: wanted by its config and buildable by this version."""
    return {e.id for e in catalog.EDGES if e.id in BUILDABLE_EDGES and is_wanted(e, spec)}


def check_buildable(spec: StackSpec) -> list[Problem]:
    return [
        Problem(f"integrations.{edge_id}", True, "this version of CERES cannot build that edge yet; remove the setting")
        for edge_id, required in spec.integrations.items()
        if required and edge_id not in BUILDABLE_EDGES
    ]


@dataclass
class Platform:
    spec: StackSpec
    hosts: dict[str, DockerHostComponent] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def edges(self) -> list[IntegrationEdge]:
        return [edge for service in self.services.values() for edge in service.edges]

    def report(self) -> dict[str, Any]:
        return integration_report(self.spec, [edge.edge.id for edge in self.edges])

    def outputs(self) -> dict[str, Any]:
        report = self.report()
        return {
            "integration_score": report["score"],
            "integration_matrix": report["edges"],
            "urls": {name: self.spec.public_url(name) for name in ("gitea",) if name in self.services},
        }


def build_platform(spec: StackSpec) -> Platform:
    """Register every resource of the stack, in dependency order, under one graph."""
    problems = check_buildable(spec)
    if problems:
        raise ConfigError(problems)
    edges = planned_edges(spec)
    platform = Platform(spec)
    prefix = f"ceres-{pulumi.get_stack()}"
    for host in spec.hosts:
        platform.hosts[host.name] = DockerHostComponent(host, prefix)
    apps = platform.hosts[spec.host_for("apps").name]

    postgres = None
    if spec.enabled("postgres"):
        consumers = tuple(e.source for e in catalog.EDGES if e.kind == "database" and e.id in edges)
        postgres = platform.services["postgres"] = PostgreSQL(spec.services.postgres, apps, consumers)
    if spec.enabled("gitea"):
        platform.services["gitea"] = Gitea(spec, apps, postgres if "db-gitea" in edges else None)
    return platform
