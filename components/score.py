"""The integration score: computed from the edge components present in a stack's graph.

`have` counts catalog edges whose component exists; `want` counts catalog edges that apply
to the stack. Edges that cannot apply are reported with their reason and left out of `want`;
edges that apply but are not built count as missing, with the reason why.

A `missing` edge stays in `want` even when the stack's own config rules it out (a disabled
service, a switch, no mail relay): the platform wants it, and the score says what turning it
on would take. Pure functions: no Pulumi import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from components.catalog import EDGES, EDGES_BY_ID, HA_ENDPOINTS, LAYERS, Edge
from stacks.spec import StackSpec

CONFIGURED, MISSING, NOT_APPLICABLE = "configured", "missing", "not_applicable"

@dataclass(frozen=True)
class EdgeStatus:
    edge: Edge
    status: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {
            "id": self.edge.id,
            "layer": self.edge.layer,
            "source": self.edge.source,
            "target": self.edge.target,
            "mechanism": self.edge.mechanism,
            "status": self.status,
            "reason": self.reason,
        }


def why_not_wanted(edge: Edge, spec: StackSpec) -> str | None:
    """Why this stack does not ask for `edge` (a disabled endpoint, a switch, missing settings), or None."""
    if spec.integrations.get(edge.id) is False:
        return f"switched off (integrations.{edge.id}=false)"
    off = [needed for needed in edge.needs if spec.integrations.get(needed) is False]
    if off:
        return f"needs {', '.join(off)}, which is switched off (integrations.{off[0]}=false)"
    for needed in map(EDGES_BY_ID.__getitem__, edge.needs):
        reason = needed.not_applicable(spec) or why_not_wanted(needed, spec)
        if reason:
            return f"needs {needed.id}, which this stack does not get: {reason}"
    disabled = [name for name in edge.services if not spec.enabled(name)]
    if disabled:
        return "; ".join(f"service {name} is disabled (services.{name}.enabled=false)" for name in disabled)
    ends = (edge.source, edge.target, *edge.via)
    if any(name in HA_ENDPOINTS for name in ends) and not spec.ha.enabled:
        return "the HA tier is off (ha.enabled=false)"
    if "smtp" in ends and spec.smtp is None:
        return "no mail relay configured (set ceres:smtp)"
    if "object_store" in ends and spec.backup.object_store is None:
        return "no object store configured (set ceres:backup.object_store and the secrets backup_s3_access_key, backup_s3_secret_key)"
    return None


def is_wanted(edge: Edge, spec: StackSpec) -> bool:
    """True when the edge applies to this stack and nothing in its config rules it out."""
    return edge.not_applicable(spec) is None and why_not_wanted(edge, spec) is None


def edge_statuses(spec: StackSpec, present: Iterable[str]) -> list[EdgeStatus]:
    built = set(present)
    statuses = []
    for edge in EDGES:
        inapplicable = edge.not_applicable(spec)
        if inapplicable:
            statuses.append(EdgeStatus(edge, NOT_APPLICABLE, inapplicable))
        elif edge.id in built:
            statuses.append(EdgeStatus(edge, CONFIGURED, ""))
        else:
            reason = why_not_wanted(edge, spec) or "not built by this version of CERES yet"
            statuses.append(EdgeStatus(edge, MISSING, reason))
    return statuses


def _tally(statuses: list[EdgeStatus]) -> dict[str, object]:
    have = sum(1 for s in statuses if s.status == CONFIGURED)
    want = sum(1 for s in statuses if s.status != NOT_APPLICABLE)
    percent = round(100.0 * have / want, 1) if want else None
    return {"have": have, "want": want, "percent": percent}


def score(statuses: list[EdgeStatus]) -> dict[str, object]:
    """Per layer and overall `{have, want, percent}`; percent is None where nothing is wanted."""
    return {
        "overall": _tally(statuses),
        "layers": {layer: _tally([s for s in statuses if s.edge.layer == layer]) for layer in LAYERS},
    }


def integration_report(spec: StackSpec, present: Iterable[str]) -> dict[str, object]:
    """The `ceres matrix --format json` document and the stack outputs' source."""
    statuses = edge_statuses(spec, present)
    return {"score": score(statuses), "edges": [s.as_dict() for s in statuses]}
