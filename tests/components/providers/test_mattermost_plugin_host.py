"""The Mattermost providers driven through the real plugin host (`python -m pulumi.dynamic`) as the engine does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.providers.mattermost import ChannelProvider, IncomingWebhookProvider, TeamProvider, hook_resource_id
from tests.components.providers.fake_mattermost import VALID_TOKEN, running_fake_mattermost
from tests.components.providers.plugin_host import UNKNOWN, PluginHost, ProviderError, plugin_host, secret

FAST = {"total_timeout_s": 3.0, "request_timeout_s": 1.0}


@pytest.fixture(scope="module")
def host() -> Iterator[PluginHost]:
    with plugin_host() as running:  # one host process per module: it costs a second of shared CPU
        yield running


@pytest.fixture
def fake():
    with running_fake_mattermost() as server:
        yield server
        assert server.contract_errors == [], "requests outside the Mattermost contract"


def common(fake, **values) -> dict:
    return {"api_url": fake.base_url, "token": secret(VALID_TOKEN), "verify_tls": True, **values}


def test_check_fills_defaults_and_reports_rules_by_property(host: PluginHost, fake) -> None:
    inputs, failures = host.check(IncomingWebhookProvider(), {}, common(fake, channel_id="a" * 26, display_name="CI"))
    assert failures == []
    assert inputs["channel_locked"] is True and inputs["username"] == "" and inputs["provider_version"] == "1"

    _, failures = host.check(TeamProvider(), {}, common(fake, team_name="admin-team", display_name=""))
    assert sorted(prop for prop, _ in failures) == ["display_name", "team_name"]
    assert all(VALID_TOKEN not in reason for _, reason in failures)


def test_check_and_diff_leave_unknown_values_alone_at_preview(host: PluginHost, fake) -> None:
    news = common(fake, team_id=UNKNOWN, channel_name="alerts", display_name=UNKNOWN, token=UNKNOWN)
    _, failures = host.check(ChannelProvider(), {}, news)
    assert failures == []

    olds, _ = host.check(ChannelProvider(), {}, common(fake, team_id="a" * 26, channel_name="alerts", display_name="A"))
    outcome = host.diff(ChannelProvider(), "c" * 26, olds, {**olds, "team_id": UNKNOWN})
    assert outcome.changes is True and outcome.replaces == ["team_id"]


def test_diff_through_the_host(host: PluginHost, fake) -> None:
    olds, _ = host.check(IncomingWebhookProvider(), {}, common(fake, channel_id="a" * 26, display_name="CI"))
    assert host.diff(IncomingWebhookProvider(), "hook-x", olds, {**olds, "channel_id": "b" * 26}).replaces == []
    assert host.diff(IncomingWebhookProvider(), "hook-x", olds, {**olds, "api_url": "https://x.example.com"}).replaces == ["api_url"]
    assert host.diff(IncomingWebhookProvider(), "hook-x", olds, dict(olds)).changes is False


def test_create_read_update_delete_through_the_host(host: PluginHost, fake) -> None:
    team_id, team_outs = host.create(TeamProvider(**FAST), common(fake, team_name="ceres", display_name="CERES"))
    assert team_id == team_outs["team_id"] and team_id in fake.teams

    channel_id, _ = host.create(ChannelProvider(**FAST), common(
        fake, team_id=team_id, channel_name="alerts", display_name="Alerts", purpose=""))
    assert fake.channels[channel_id]["name"] == "alerts"

    props, _ = host.check(IncomingWebhookProvider(), {}, common(fake, channel_id=channel_id, display_name="CI"))
    id_, outs = host.create(IncomingWebhookProvider(**FAST), props)
    hook_id = outs["hook_id"]
    assert hook_id in fake.hooks and id_ == hook_resource_id(hook_id) and hook_id not in id_

    read_id, read_outs = host.read(IncomingWebhookProvider(**FAST), id_, outs)
    assert read_id == id_ and read_outs["display_name"] == "CI"

    updated = host.update(IncomingWebhookProvider(**FAST), id_, outs, {**props, "description": "from CI"})
    assert fake.hooks[hook_id]["description"] == "from CI" == updated["description"]

    host.delete(IncomingWebhookProvider(**FAST), id_, updated)
    assert hook_id not in fake.hooks
    assert host.read(IncomingWebhookProvider(**FAST), id_, updated)[0] == ""  # gone: the engine drops it


def test_a_refused_token_reaches_the_engine_without_the_token(host: PluginHost, fake) -> None:
    fake.token = "another-token"
    with pytest.raises(ProviderError) as caught:
        host.create(TeamProvider(**FAST), common(fake, team_name="ceres", display_name="CERES"))
    assert "401" in caught.value.details and "mattermost-bot-token" in caught.value.details
    assert VALID_TOKEN not in caught.value.details
