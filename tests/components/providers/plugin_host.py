"""Drive a dynamic provider through the real plugin host (`python -m pulumi.dynamic`) over gRPC.

The requests are built as the Pulumi engine builds them: `__provider` holds the dill-pickled
provider (`serialize_provider`), properties travel as protobuf Structs, the URN is that of a
`pulumi-python:dynamic:Resource`, and Configure is called first with acceptSecrets=True. The
dynamic host answers acceptSecrets=False, so the engine (and this harness) then sends secret
values as plain values; a host that accepted secrets would get the sig-wrapped form.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[3]
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
PROVIDER_KEY = "__provider"
# The value the engine sends for an input not known yet (preview); only Check and Diff see it.
# The host hands it to the provider's check/diff as a `pulumi.output.Unknown` instance.
UNKNOWN = rpc.UNKNOWN
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Secret:
    """A secret input or output value, as the engine tracks it."""

    value: Any


def secret(value: Any) -> Secret:
    return Secret(value)


class DiffOutcome(NamedTuple):
    changes: bool | None  # None: the provider could not tell (DIFF_UNKNOWN)
    replaces: list[str]
    delete_before_replace: bool


class ProviderError(RuntimeError):
    """A gRPC error from the host; the message carries the provider's traceback text."""

    def __init__(self, method: str, error: grpc.RpcError) -> None:
        self.code, self.details = error.code(), error.details() or ""
        super().__init__(f"{method} failed ({self.code.name}): {self.details}")


class PluginHost:
    def __init__(self, stub: provider_pb2_grpc.ResourceProviderStub, timeout: float) -> None:
        self._stub, self._timeout = stub, timeout
        self.accepts_secrets = False

    def configure(self, config: dict[str, str]) -> None:
        response = self._call("Configure", provider_pb2.ConfigureRequest(
            variables=config, args=_struct(config), acceptSecrets=True, acceptResources=True))
        self.accepts_secrets = response.acceptSecrets

    def check(self, provider: ResourceProvider, olds: dict, news: dict, *,
              name: str = "test") -> tuple[dict, list[tuple[str, str]]]:
        """-> (inputs, [(property, reason), ...]); `olds` is {} on a create, as from the engine."""
        response = self._call("Check", provider_pb2.CheckRequest(
            urn=urn(name), olds=self._props(provider, olds), news=self._props(provider, news)))
        return _plain(response.inputs), [(f.property, f.reason) for f in response.failures]

    def diff(self, provider: ResourceProvider, id_: str, olds: dict, news: dict, *, name: str = "test") -> DiffOutcome:
        response = self._call("Diff", provider_pb2.DiffRequest(
            id=id_, urn=urn(name), olds=self._props(provider, olds), news=self._props(provider, news)))
        changes = {provider_pb2.DiffResponse.DIFF_SOME: True, provider_pb2.DiffResponse.DIFF_NONE: False}
        return DiffOutcome(changes.get(response.changes), list(response.replaces), response.deleteBeforeReplace)

    def create(self, provider: ResourceProvider, props: dict, *, name: str = "test") -> tuple[str, dict]:
        response = self._call("Create", provider_pb2.CreateRequest(
            urn=urn(name), properties=self._props(provider, props, known=True), timeout=self._timeout))
        return response.id, _plain(response.properties)

    def read(self, provider: ResourceProvider, id_: str, props: dict, *, name: str = "test") -> tuple[str, dict]:
        """Refresh: the engine sends the stored outputs (and inputs; here the same dict). Id "" = gone."""
        state = self._props(provider, props, known=True)
        response = self._call("Read", provider_pb2.ReadRequest(
            id=id_, urn=urn(name), properties=state, inputs=state))
        return response.id, _plain(response.properties)

    def update(self, provider: ResourceProvider, id_: str, olds: dict, news: dict, *, name: str = "test") -> dict:
        response = self._call("Update", provider_pb2.UpdateRequest(
            id=id_, urn=urn(name), olds=self._props(provider, olds, known=True),
            news=self._props(provider, news, known=True), timeout=self._timeout))
        return _plain(response.properties)

    def delete(self, provider: ResourceProvider, id_: str, props: dict, *, name: str = "test") -> None:
        self._call("Delete", provider_pb2.DeleteRequest(
            id=id_, urn=urn(name), properties=self._props(provider, props, known=True), timeout=self._timeout))

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self._timeout)
        except grpc.RpcError as error:
            raise ProviderError(method, error) from None

    def _props(self, provider: ResourceProvider, props: dict, *, known: bool = False) -> struct_pb2.Struct:
        """Marshal as the engine does; an empty dict (no prior state) stays empty, without `__provider`."""
        if known and UNKNOWN in repr(props):
            raise ValueError("the engine never sends unknown values to Create/Read/Update/Delete")
        if not props:
            return struct_pb2.Struct()
        return _struct({**self._wire(props), PROVIDER_KEY: serialize_provider(provider)})

    def _wire(self, value: Any) -> Any:
        if isinstance(value, Secret):
            inner = self._wire(value.value)
            return rpc.wrap_rpc_secret(inner) if self.accepts_secrets else inner
        if isinstance(value, dict):
            return {key: self._wire(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._wire(item) for item in value]
        return value


def urn(name: str) -> str:
    return f"urn:pulumi:stack::project::pulumi-python:dynamic:Resource::{name}"


def _struct(props: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(props)
    return message


def _plain(message: struct_pb2.Struct) -> dict:
    """Unmarshal minus `__provider`: sig-wrapped secrets become `Secret`, unknowns the UNKNOWN string."""
    props = rpc.deserialize_properties(message, keep_unknowns=True)
    props.pop(PROVIDER_KEY, None)
    return {key: _unwire(value) for key, value in props.items()}


def _unwire(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        return Secret(_unwire(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        return {key: _unwire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwire(item) for item in value]
    return value


@contextlib.contextmanager
def plugin_host(config: dict[str, str] | None = None, timeout: float = 30.0) -> Iterator[PluginHost]:
    """Start the real dynamic provider host (cwd = repo root), configure it, stop it on exit."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([str(PYTHON), "-m", "pulumi.dynamic"], cwd=REPO_ROOT,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        # One reader: the first line (the port) goes to the queue; later output (a provider's
        # prints) is drained so a full pipe never blocks the host.
        first_line: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(target=_read_stdout, args=(process.stdout, first_line), daemon=True)
        reader.start()
        channel = None
        try:
            port = _port(first_line, stderr)
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=timeout)
            host = PluginHost(provider_pb2_grpc.ResourceProviderStub(channel), timeout)
            host.configure(config or {})
            yield host
        finally:
            if channel is not None:
                channel.close()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            reader.join(timeout=10)
            process.stdout.close()


def _read_stdout(stdout: Any, first_line: queue.Queue) -> None:
    first_line.put(stdout.readline())
    while stdout.read(65536):
        pass


def _port(first_line: queue.Queue, stderr: Any) -> int:
    try:
        line = first_line.get(timeout=START_TIMEOUT).strip()
        problem = "" if line.isdigit() else (f"printed {line[:200]!r} instead of its port" if line
                                             else "exited before printing its port")
    except queue.Empty:
        problem = f"printed no port within {START_TIMEOUT:.0f} s"
    if problem:
        stderr.seek(0)
        raise RuntimeError(f"dynamic provider host {problem}; stderr:\n{stderr.read().decode(errors='replace')}")
    return int(line)
