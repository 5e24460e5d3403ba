"""The offline plan: resources in dependency order, counts, the deploy critical path, the score."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cli.offline import OfflineRun, Recorded


def _direct_dependencies(resource: Recorded) -> list[str]:
    return [*resource.dependencies, *([resource.provider] if resource.provider else [])]


def dependency_order(resources: list[Recorded]) -> list[Recorded]:
    """Parents and dependencies before dependents; ties go by URN, since the engine registers
    concurrently and its arrival order differs from run to run."""
    by_urn = {r.urn: r for r in resources}
    needs = {
        r.urn: {u for u in [r.parent, *_direct_dependencies(r)] if u in by_urn and u != r.urn}
        for r in resources
    }
    ordered: list[Recorded] = []
    done: set[str] = set()
    while len(ordered) < len(resources):
        ready = [u for u in by_urn if u not in done and needs[u] <= done]
        if not ready:
            raise ValueError("dependency cycle among: " + ", ".join(sorted(set(by_urn) - done)))
        nxt = min(ready)
        ordered.append(by_urn[nxt])
        done.add(nxt)
    return ordered


def _custom_descendants(resources: list[Recorded]) -> dict[str, set[str]]:
    """For each URN, the custom resources it stands for: itself, or everything a component holds."""
    children: dict[str, list[str]] = {}
    for r in resources:
        children.setdefault(r.parent, []).append(r.urn)
    custom = {r.urn for r in resources if r.custom}

    def collect(urn: str) -> set[str]:
        found = {urn} if urn in custom else set()
        for child in children.get(urn, []):
            found |= collect(child)
        return found

    return {r.urn: collect(r.urn) for r in resources}


def critical_path(resources: list[Recorded]) -> list[str]:
    """The longest chain of custom resources each waiting on the one before (depending on a
    component means waiting for everything in it, as the engine does)."""
    stands_for = _custom_descendants(resources)
    ordered = [r for r in dependency_order(resources) if r.custom]
    waits_on = {
        r.urn: {c for dep in _direct_dependencies(r) for c in stands_for.get(dep, ())} - {r.urn}
        for r in ordered
    }
    longest: dict[str, list[str]] = {}
    for r in ordered:
        best = max((longest[d] for d in sorted(waits_on[r.urn]) if d in longest), key=len, default=[])
        longest[r.urn] = [*best, r.urn]
    return max(longest.values(), key=len, default=[])


def plan_document(run: OfflineRun) -> dict[str, Any]:
    ordered = dependency_order(run.resources)
    return {
        "stack": run.stack,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "dependencies": r.dependencies,
                "provider": r.provider,
                "inputs": r.inputs,
            }
            for r in ordered
        ],
        "critical_path": critical_path(run.resources),
        "score": run.outputs["integration_score"],
    }


def _percent(tally: dict[str, Any]) -> str:
    return "n/a" if tally["percent"] is None else f"{tally['percent']}%"


def render_plan_text(run: OfflineRun) -> str:
    ordered = dependency_order(run.resources)
    rank = {r.urn: index for index, r in enumerate(ordered)}
    children: dict[str, list[Recorded]] = {}
    for r in ordered:
        children.setdefault(r.parent, []).append(r)
    # A component is listed where it finishes: after the last resource it holds.
    finish = dict(rank)
    for r in reversed(ordered):
        finish[r.parent] = max(finish.get(r.parent, -1), finish[r.urn])
    names = {r.urn: r.name for r in run.resources}
    lines = [
        f"CERES offline plan — stack {run.stack}",
        "Evaluated the real program in-process with a recording mock engine: no Docker, no Pulumi CLI,",
        f"no network. This is not a Pulumi preview: `pulumi preview --stack {run.stack}` asks the engine.",
        "",
        "Resources by component, in dependency order:",
    ]

    def show(resource: Recorded, depth: int) -> None:
        indent = "  " * depth
        if resource.custom:
            waits = [names[d] for d in resource.dependencies if d in names]
            after = f"  (after {', '.join(waits)})" if waits else ""
            lines.append(f"{indent}+ {resource.type:<45} {resource.name}{after}")
        else:
            lines.append(f"{indent}{resource.type} {resource.name}")
        for child in sorted(children.get(resource.urn, []), key=lambda c: finish[c.urn]):
            show(child, depth + 1)

    top_level = {r.parent for r in run.resources} - set(names)
    for root in sorted((r for r in ordered if r.parent in top_level), key=lambda r: finish[r.urn]):
        show(root, 1)

    counts = Counter(r.type for r in run.resources)
    custom = sum(1 for r in run.resources if r.custom)
    lines += ["", "Resources by type:"]
    lines += [f"  {count:>4}  {kind}" for kind, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines.append(f"  {len(run.resources):>4}  in all ({custom} to deploy, {len(run.resources) - custom} components)")

    path = critical_path(run.resources)
    lines += ["", f"Critical path (longest dependency chain, {len(path)} resources):"]
    lines.append("  " + " → ".join(names[u] for u in path))

    score = run.outputs["integration_score"]
    overall = score["overall"]
    lines += ["", f"Integration score: {overall['have']}/{overall['want']} ({_percent(overall)})"]
    lines += [
        f"  {layer:<20} {tally['have']:>3}/{tally['want']:<3} {_percent(tally)}"
        for layer, tally in score["layers"].items()
    ]
    lines.append(f"  (`ceres matrix --stack {run.stack}` lists every edge and why it is missing or not applicable)")
    return "\n".join(lines) + "\n"
