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
    basic auth), which Prometheus then holds as secret files.

    `members`: the catalog target is a set of HA members the service runs (`patroni`, the
    PostgreSQL cluster's members): the job is the service's `members_scrape_job(members)`, over
    every member."""

    kind = "scrape"

    def __init__(self, prometheus: Service, target: Service, opts: pulumi.ResourceOptions | None = None, *,
                 members: str | None = None):
        if members is not None:
            super().__init__(catalog.scrape_id(members), prometheus, members, opts)
            self.job = target.members_scrape_job(members)
        else:
            metrics_target = getattr(target, "metrics_target", None)
            if not isinstance(metrics_target, str):
                raise TypeError(f"ScrapeEdge: {target.service!r} exposes no metrics_target (name:port)")
            super().__init__(catalog.scrape_id(target.service), prometheus, target, opts)
            own_job = getattr(target, "scrape_job", None)
            self.job = own_job() if own_job is not None else config.ScrapeJob(target.service, (metrics_target,))
        self.register_outputs({"job": self.job.name, "targets": list(self.job.targets), "path": self.job.metrics_path})
