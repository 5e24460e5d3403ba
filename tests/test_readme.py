"""README.md stays true: its configuration reference, pinned images, numbers and commands."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from components.catalog import EDGES, PUBLIC_APPS
from components.score import NOT_APPLICABLE, edge_statuses
from stacks.load import load_spec
from stacks.spec import SECRET_SETTINGS, SERVICE_NAMES, Services, ServiceSpec, StackSpec
from stacks.tiers import BASE
from tests.conftest import stack_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


# What the keys of each map setting are, as the reference names them.
MAP_KEYS = {"integrations": "<edge-id>", "extra_redirect_uris": "<app>"}


def _models_in(annotation) -> list[type[BaseModel]]:
    """The models a field holds: itself, an Optional's, a tagged union's members, a tuple's items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def setting_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key a user can set, as the reference names it (`tls.email`, `hosts[].url`)."""
    paths = set()
    for name, field in model.model_fields.items():
        path = prefix + name + ("[]" if typing.get_origin(field.annotation) is tuple else "")
        models = _models_in(field.annotation)
        if typing.get_origin(field.annotation) is dict:
            paths.add(f"{path}.{MAP_KEYS[name]}")
        elif models:
            for member in models:
                paths |= setting_paths(member, f"{path}.")
        else:
            paths.add(path.removesuffix("[]"))
    return paths


def reference_paths() -> set[str]:
    """The spec's settings, with the per-service ones once as `services.<name>.*` and
    the fields only one service has under its own name."""
    generic = setting_paths(ServiceSpec, "services.<name>.")
    paths = {p for p in setting_paths(StackSpec) if not p.startswith("services.")} | generic
    for name in SERVICE_NAMES:
        own = setting_paths(Services.model_fields[name].annotation, f"services.{name}.")
        paths |= {p for p in own if p.replace(f"services.{name}.", "services.<name>.") not in generic}
    return paths | set(SECRET_SETTINGS)


def test_every_setting_is_in_the_configuration_reference():
    missing = sorted(p for p in reference_paths() if f"| `{p}` |" not in README)
    assert not missing, f"README's configuration reference lacks: {missing}"


def test_the_pinned_images_and_urls_in_the_readme_are_the_defaults():
    for name in SERVICE_NAMES:
        service = BASE["services"][name]
        row = f"| `{name}` | `{service['image']}` |"
        assert row in README, f"README's service table is stale for {name}: expected {row}"
        if name in PUBLIC_APPS:
            assert f"{row} `https://{service['subdomain']}.ceres.localhost` |" in README, name


def test_the_score_numbers_in_the_readme_are_computed_ones():
    wants = {}
    for stack in ("dev", "prod"):
        config, secret_keys = stack_config(stack)
        statuses = edge_statuses(load_spec(stack, config, set(secret_keys)), set())
        wants[stack] = sum(1 for s in statuses if s.status != NOT_APPLICABLE)
    sentence = f"{len(EDGES)} catalog edges; the dev stack wants {wants['dev']} of them ({len(EDGES) - wants['dev']} do not apply), the prod stack {wants['prod']}"
    assert sentence in " ".join(README.split()), f"README should say: {sentence}"


def test_the_quickstart_is_two_commands_that_exist():
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^bash (\S+)", re.search(r"```sh\n(.*?)```", quickstart, re.S).group(1), re.M)
    assert commands == ["scripts/plan.sh", "scripts/test.sh"]
    assert all((ROOT / c).is_file() for c in commands)
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
