"""Edge kind `datasource`: Grafana reads a backend (Prometheus, Loki, Tempo) as a datasource."""

from __future__ import annotations

import json
from typing import Collection

import pulumi
import pulumiverse_grafana as grafana

from components.base import IntegrationEdge, Service
from components.config import grafana as config


class DatasourceEdge(IntegrationEdge):
    """`datasource-<target>`: one Grafana datasource with a fixed uid (`config.UIDS`), at the
    target's internal URL (Grafana's server side queries it over the monitoring network).

    `linked` are the datasource kinds Grafana has besides this one: the trace <-> log <-> metric
    links (`config.datasource_json_data`) point only at those. `provider_opts` carry Grafana's
    admin provider (and what it depends on).
    """

    kind = "datasource"

    def __init__(
        self,
        grafana_service: Service,
        target: Service,
        provider_opts: pulumi.ResourceOptions,
        *,
        linked: Collection[str] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        kind = target.service
        if kind not in config.KINDS:
            raise ValueError(f"DatasourceEdge: {kind!r} is not a datasource Grafana reads ({', '.join(config.KINDS)})")
        super().__init__(f"datasource-{kind}", grafana_service, target, opts)
        self.uid = config.UIDS[kind]
        self.datasource = grafana.oss.DataSource(
            f"grafana-datasource-{kind}",
            type=config.datasource_type(kind),
            name=config.NAMES[kind],
            uid=self.uid,
            url=target.internal_url,
            access_mode="proxy",
            # Prometheus answers the dashboards that do not name a datasource.
            is_default=kind == "prometheus",
            json_data_encoded=json.dumps(config.datasource_json_data(kind, {kind, *linked}), sort_keys=True),
            opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), provider_opts),
        )
        self.register_outputs({"uid": self.uid, "url": target.internal_url})
