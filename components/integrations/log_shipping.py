"""Edge kind `log_shipping`: container logs travel to Loki through the shipper."""

from __future__ import annotations

import pulumi

from components.base import IntegrationEdge, Service


class LogShippingEdge(IntegrationEdge):
    """Both log edges live under the shipper (Alloy): `logs-shipper`, it writes to Loki's push API;
    `logs-containers`, it finds every container of the stack on its Docker host and tails its
    output, labelled `service`, `stack`, `container` and `host` (the containers are a group with no
    component of their own)."""

    kind = "log_shipping"

    def __init__(self, edge_id: str, shipper: Service, loki: Service, opts: pulumi.ResourceOptions | None = None):
        super().__init__(edge_id, shipper, loki, opts)
        self.register_outputs({"loki": loki.internal_url})
