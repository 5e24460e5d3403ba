"""The plugin-host harness against the real `python -m pulumi.dynamic`, driving the toy provider."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.components.providers import plugin_host as harness
from tests.components.providers.plugin_host import UNKNOWN, DiffOutcome, PluginHost, ProviderError, plugin_host, secret
from tests.components.providers.toy_provider import ToyProvider

TOY = ToyProvider()


@pytest.fixture(scope="module")
def host() -> Iterator[PluginHost]:
    # One host process for the module: starting one costs about a second of a shared CPU.
    with plugin_host() as running:
        yield running


def test_check_returns_the_inputs_without_failures_for_valid_input(host: PluginHost) -> None:
    inputs, failures = host.check(TOY, {}, {"name": "alpha", "note": "hi", "size": 3})

    assert inputs == {"name": "alpha", "note": "hi", "size": 3}
    assert failures == []


def test_check_reports_failures_by_property(host: PluginHost) -> None:
    _, failures = host.check(TOY, {"name": "alpha"}, {"name": "Not Valid"})

    assert [prop for prop, _ in failures] == ["name"]
    assert "Not Valid" in failures[0][1]


def test_check_sees_unknown_values_as_the_engine_sends_them_at_preview(host: PluginHost) -> None:
    inputs, failures = host.check(TOY, {}, {"name": UNKNOWN})

    assert failures == []
    assert inputs == {"name": UNKNOWN}


def test_diff_tells_update_in_place_from_replace(host: PluginHost) -> None:
    olds = {"name": "alpha", "note": "one"}

    assert host.diff(TOY, "toy-alpha", olds, dict(olds)) == DiffOutcome(False, [], False)
    assert host.diff(TOY, "toy-alpha", olds, {**olds, "note": "two"}) == DiffOutcome(True, [], False)
    assert host.diff(TOY, "toy-alpha", olds, {**olds, "name": "beta"}) == DiffOutcome(True, ["name"], True)


def test_create_read_update_delete_round_trip(host: PluginHost) -> None:
    id_, outs = host.create(TOY, {"name": "alpha", "note": "one"})
    assert id_ == "toy-alpha"
    assert outs == {"name": "alpha", "note": "one", "token_type": "NoneType"}

    read_id, read_outs = host.read(TOY, id_, outs)
    assert read_id == id_
    assert read_outs["read_count"] == 1

    updated = host.update(TOY, id_, read_outs, {"name": "alpha", "note": "two"})
    assert updated == {"name": "alpha", "note": "two", "previous_note": "one"}

    assert host.delete(TOY, id_, updated) is None


def test_read_of_a_resource_gone_returns_an_empty_id(host: PluginHost) -> None:
    assert host.read(TOY, "toy-alpha", {"name": "alpha", "gone": True}) == ("", {})


def test_secret_inputs_reach_the_dynamic_host_as_plain_values_like_the_engine_sends_them(host: PluginHost) -> None:
    # The dynamic host answers Configure with acceptSecrets=False, so the engine strips the secret
    # marker before sending: the provider sees a plain str (and the engine re-marks the output).
    assert host.accepts_secrets is False

    _, outs = host.create(TOY, {"name": "alpha", "token": secret("s3cret")})

    assert outs["token"] == "s3cret"
    assert outs["token_type"] == "str"


def test_secrets_are_sig_wrapped_for_a_host_that_accepts_them() -> None:
    accepting = PluginHost(stub=None, timeout=1)
    accepting.accepts_secrets = True

    wire = accepting._props(TOY, {"token": secret("s3cret")})

    assert harness.rpc.is_rpc_secret(harness.rpc.deserialize_properties(wire)["token"])


def test_an_exception_in_the_provider_surfaces_as_a_provider_error_with_its_text(host: PluginHost) -> None:
    with pytest.raises(ProviderError, match="boom requested") as caught:
        host.create(TOY, {"name": "alpha", "boom": True})

    assert caught.value.code == grpc.StatusCode.UNKNOWN
    assert "RuntimeError" in caught.value.details


def test_a_host_that_dies_at_start_fails_with_its_stderr(tmp_path, monkeypatch) -> None:
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: no pulumi here' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(harness, "PYTHON", broken)

    with pytest.raises(RuntimeError, match="exited before printing its port(.|\n)*no pulumi here"):
        with plugin_host():
            pass
