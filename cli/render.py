"""`ceres render`: the config files the program puts into containers, written out for real tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cli.offline import SECRET_MARK, OfflineRun


def container_files(run: OfflineRun) -> dict[str, dict[str, str]]:
    """service -> {container path -> content}, read from the recorded containers' uploads."""
    files: dict[str, dict[str, str]] = {}
    for resource in run.resources:
        if resource.type != "docker:index/container:Container":
            continue
        labels = {item["label"]: item["value"] for item in resource.inputs.get("labels", [])}
        service = labels.get("io.ceres.service", resource.name)
        for upload in resource.inputs.get("uploads", []):
            files.setdefault(service, {})[upload["file"]] = upload.get("content", SECRET_MARK)
    return files


@dataclass
class Rendered:
    written: list[Path] = field(default_factory=list)
    # Files that carry credentials stay secret: named, never written.
    withheld: list[str] = field(default_factory=list)


def write_files(run: OfflineRun, out: Path) -> Rendered:
    """Write `<out>/<service>/<container path>` for every plain config file."""
    rendered = Rendered()
    for service, files in sorted(container_files(run).items()):
        for container_path, content in sorted(files.items()):
            if content == SECRET_MARK:
                rendered.withheld.append(f"{service}:{container_path}")
                continue
            target = out / service / PurePosixPath(container_path).relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            rendered.written.append(target)
    return rendered
