"""Edge kind `alert_route`: a source of alerts hands them to Alertmanager, which routes them."""

from __future__ import annotations

import pulumi

from components.base import IntegrationEdge, Service


class AlertRouteEdge(IntegrationEdge):
    """`alerts-<source>`: the source sends its firing and resolved alerts to `alertmanager`."""

    kind = "alert_route"

    def __init__(self, source: Service, alertmanager: Service, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"alerts-{source.service.replace('_', '-')}", source, alertmanager, opts)
        self.upstream = alertmanager.upstream
        self.register_outputs({"alertmanager": self.upstream})
