"""Evaluate the real CERES program in-process with a recording mock engine.

No Docker, no Pulumi CLI, no network: every resource the program registers is recorded with
its type, name, parent, dependencies, provider, inputs (secrets masked) and secret outputs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.base import fail_unserved

PROJECT = "ceres"
PROJECT_DIR = Path(__file__).resolve().parent.parent


def project_dir() -> Path:
    """The project the user stands in, else the one CERES was installed from."""
    here = Path.cwd()
    return here if (here / "Pulumi.yaml").exists() else PROJECT_DIR
SECRET_MARK = "[secret]"
# pulumi.dynamic's serialize_provider wraps pickle._Pickler._batch_setitems once more on every
# dynamic resource and never unwraps it (pulumi 3.27x; cf. pulumi/pulumi#17803). One stack is a
# few dozen wraps; a process that evaluates stacks again and again (the tests) reaches Python's
# recursion limit. Each offline run starts from the original.
_BATCH_SETITEMS = pickle._Pickler._batch_setitems
_SECRET_SIG = rpc._special_secret_sig
_SIG_KEY = rpc._special_sig_key


@dataclass
class Recorded:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    dependencies: list[str]
    provider: str
    inputs: dict[str, Any]
    secret_outputs: list[str]
    state: dict[str, Any] = field(repr=False, default_factory=dict)
    # Which inputs carry which resources' outputs (a delete-before-replace cascades along these).
    property_dependencies: dict[str, list[str]] = field(repr=False, default_factory=dict)


def _mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return SECRET_MARK
        return {key: _mask_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(item) for item in value]
    return value


# What each CERES dynamic provider (components/providers/) returns besides its inputs. A secret
# output gets the "offline-" mark the tests look for in plain inputs, like a generated password.
DYNAMIC_OUTPUTS: dict[str, dict[str, str]] = {
    "pulumi-python:dynamic/mattermost:Team": {"team_id": "{name}-team-id"},
    "pulumi-python:dynamic/mattermost:Channel": {"channel_id": "{name}-channel-id"},
    "pulumi-python:dynamic/mattermost:IncomingWebhook": {"hook_id": "offline-{name}-hook-id"},
    "pulumi-python:dynamic/gitea:Organization": {"org_id": "{name}-org-id"},
    "pulumi-python:dynamic/gitea:Repository": {
        "repo_id": "{name}-repo-id",
        "clone_url": "https://gitea.offline.invalid/{name}.git",
        "html_url": "https://gitea.offline.invalid/{name}",
    },
    "pulumi-python:dynamic/gitea:Webhook": {"hook_id": "{name}-hook-id"},
}


class OfflineMocks(pulumi.runtime.Mocks):
    """Invents the outputs a real provider would return, so every dependent input resolves."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        resource_id = f"{args.name}-id"
        kind = args.typ.rsplit(":", 1)[-1]
        if kind == "RandomPassword":
            state["result"] = f"offline-{args.name}-{args.inputs.get('length', 16)}"
        elif kind == "RemoteImage":
            state["imageId"] = "sha256:" + hashlib.sha256(args.inputs["name"].encode()).hexdigest()
            state["repoDigest"] = f"{args.inputs['name'].split(':')[0]}@{state['imageId']}"
        elif kind in ("Network", "Volume", "Container"):
            state.setdefault("name", args.name)
        elif kind == "Command":
            state.update(stdout="", stderr="")
        for key, value in DYNAMIC_OUTPUTS.get(args.typ, {}).items():
            state.setdefault(key, value.format(name=args.name))
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        return {}


class RecordingMonitor(mocks.MockMonitor):
    """A mock monitor that keeps what the engine would see, and marks secret outputs as the engine does."""

    def __init__(self, mock: pulumi.runtime.Mocks):
        super().__init__(mock)
        self.recorded: list[Recorded] = []

    def RegisterResource(self, request):
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        raw_inputs = json_format.MessageToDict(request.object)
        inputs = rpc.deserialize_properties(request.object)
        resource_id, state = self.mocks.new_resource(
            mocks.MockResourceArgs(request.type, request.name, inputs, request.provider, request.importId, request.custom)
        )
        secret_outputs = list(request.additionalSecretOutputs)
        for key in secret_outputs:
            if key in state:
                state[key] = {_SIG_KEY: _SECRET_SIG, "value": state[key]}
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        self.recorded.append(Recorded(
            urn=urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent,
            dependencies=sorted(request.dependencies),
            # A provider reference is "<provider urn>::<provider id>".
            provider=request.provider.rsplit("::", 1)[0] if request.provider else "",
            inputs=_mask_secrets(raw_inputs),
            secret_outputs=secret_outputs,
            state=state,
            property_dependencies={key: sorted(deps.urns) for key, deps in request.propertyDependencies.items()},
        ))
        body = _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id if request.custom else "", object=body)


class StackFileError(Exception):
    """The stack file is missing or is not a Pulumi stack file."""


def stack_file_config(stack: str, project_dir: Path = PROJECT_DIR) -> tuple[dict[str, str], list[str]]:
    """`Pulumi.<stack>.yaml` as the engine hands it to a program: strings, objects as JSON text."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise StackFileError(f"no stack file {path.name} in {project_dir}: create it (pulumi stack init {stack}) or pass --project")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StackFileError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise StackFileError(f"{path}: expected a mapping with a `config:` mapping inside")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Encrypted values cannot be read offline; the program sees that they are set, as secrets.
            config[key] = SECRET_MARK
            secret_keys.append(key)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(value)
    return config, secret_keys


@dataclass
class OfflineRun:
    stack: str
    resources: list[Recorded]
    outputs: dict[str, Any]


class OfflineEngine:
    """One evaluation of a program under a fresh recording monitor (nothing leaks between runs)."""

    def __init__(self, stack: str, config: dict[str, str], secret_keys: Sequence[str] = ()):
        self.stack = stack
        # A loop of its own per run: a caller may close it when done without breaking the next run.
        asyncio.set_event_loop(asyncio.new_event_loop())
        settings.set_root_resource(None)
        pulumi.runtime.set_all_config(config, list(secret_keys))
        mock = OfflineMocks()
        self.monitor = RecordingMonitor(mock)
        pulumi.runtime.set_mocks(mock, project=PROJECT, stack=stack, preview=False, monitor=self.monitor)
        pickle._Pickler._batch_setitems = _BATCH_SETITEMS
        # Mock settings keep the outstanding-output set of the run before: a run that failed midway
        # leaves tasks of its closed loop there, which this run would otherwise wait for forever.
        settings.SETTINGS.outputs.clear()

    def run(self, program: Callable[[], Any]) -> Any:
        """Run `program` as the engine would, wait for every registration, return its result."""
        result: list[Any] = []

        def evaluate() -> None:
            try:
                result.append(program())
            finally:
                # Whatever still waits for a proxy fails now, so a failed program cannot hang the run.
                unserved = fail_unserved()
            if unserved:
                raise RuntimeError(f"{unserved}: `reachable_url` asked for, but no proxy serves them")

        _sync_await(run_pulumi_func(evaluate))
        return result[0]


def run_offline(stack: str, config: dict[str, str], secret_keys: Sequence[str] = ()) -> OfflineRun:
    """Run `stacks.program.run` under the recording engine and return what it registered."""
    from stacks.program import run

    engine = OfflineEngine(stack, config, secret_keys)
    outputs = engine.run(run)
    return OfflineRun(stack, engine.monitor.recorded, outputs)
