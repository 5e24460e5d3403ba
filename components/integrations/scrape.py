"""Edge kind `scrape`: Prometheus collects a service's metrics."""

from __future__ import annotations

import pulumi

from components import catalog
from components.base import IntegrationEdge, Service
from components.config import prometheus as config


class ScrapeEdge(IntegrationEdge):
    """`scrape-<target>`: one scrape job over the target's `metrics_target` (`name:port` on the
    monitoring network), named after the service so alert rules can select it by `job`. A target
    whose metrics need credentials gives its whole job instead (`scrape_job()`: a bearer token,
    basic auth), which Prometheus then holds as secret files."""

    kind = "scrape"

    def __init__(self, prometheus: Service, target: Service, opts: pulumi.ResourceOptions | None = None):
        metrics_target = getattr(target, "metrics_target", None)
        if not isinstance(metrics_target, str):
            raise TypeError(f"ScrapeEdge: {target.service!r} exposes no metrics_target (name:port)")
        super().__init__(catalog.scrape_id(target.service), prometheus, target, opts)
        own_job = getattr(target, "scrape_job", None)
        self.job = own_job() if own_job is not None else config.ScrapeJob(target.service, (metrics_target,))
        self.register_outputs({"job": self.job.name, "target": metrics_target, "path": self.job.metrics_path})
