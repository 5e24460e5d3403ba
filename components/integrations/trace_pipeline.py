"""Edge kind `trace_pipeline`: spans travel over OTLP from the apps through the collector to Tempo."""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.base import IntegrationEdge, Service


class TracePipelineEdge(IntegrationEdge):
    """`traces-collector`: the collector exports what it receives to Tempo. `traces-apps`: the apps
    that speak OTLP (`senders`) send their spans to the collector; a group with no component of
    its own, so the edge lives under the collector and names them."""

    kind = "trace_pipeline"

    def __init__(
        self,
        edge_id: str,
        source: Service,
        target: Service,
        *,
        senders: Sequence[Service] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(edge_id, source, target, opts)
        self.senders = [sender.service for sender in senders]
        self.register_outputs({"senders": self.senders, "to": target.service})
