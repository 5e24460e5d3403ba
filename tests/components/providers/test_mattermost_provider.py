"""The Mattermost providers' whole lifecycle against a fake Mattermost that checks every request against the contract."""

from __future__ import annotations

import json

import pytest
from pulumi.output import Unknown

from components.providers.mattermost import ChannelProvider, IncomingWebhookProvider, TeamProvider, hook_resource_id
from components.providers.mattermost_api import TOKEN_SETTING
from components.providers.rest import ApiError
from tests.components.providers.fake_mattermost import VALID_TOKEN, running_fake_mattermost

FAST = {"total_timeout_s": 3.0, "request_timeout_s": 1.0}


@pytest.fixture
def fake():
    with running_fake_mattermost() as server:
        yield server
        assert server.contract_errors == [], "requests outside the Mattermost contract"


def checked(provider, news: dict) -> dict:
    result = provider.check({}, news)
    assert result.failures == [], [f.reason for f in result.failures]
    return result.inputs


def common(fake, **values) -> dict:
    return {"api_url": fake.base_url, "token": VALID_TOKEN, "verify_tls": True, **values}


def assert_no_secrets(*texts: str, hook_id: str = "") -> None:
    for text in texts:
        assert VALID_TOKEN not in text
        assert not hook_id or hook_id not in text


def body(record) -> dict:
    return json.loads(record.body)


def made_team(fake) -> dict:
    return fake.add_team("ceres", "CERES")


def made_channel(fake, name: str = "alerts") -> dict:
    team = next(iter(fake.teams.values()), None) or made_team(fake)
    return fake.add_channel(team["id"], name, name.title())


# Team ----------------------------------------------------------------------------------------------

def test_team_lifecycle_creates_open_updates_sees_drift_and_leaves_it(fake):
    provider = TeamProvider(**FAST)
    news = checked(provider, common(fake, team_name="ceres", display_name="CERES"))
    assert news["provider_version"] == "1"

    created = provider.create(news)
    team = fake.teams[created.id]
    assert created.outs["team_id"] == created.id and team["name"] == "ceres"
    assert body(fake.calls("POST")[0]) == {"name": "ceres", "display_name": "CERES", "type": "O", "allow_open_invite": True}
    assert created.outs["token"] == VALID_TOKEN  # kept for later calls; a secret output
    assert_no_secrets(repr(created.outs))

    read = provider.read(created.id, created.outs)
    assert read.id == created.id and provider.diff(created.id, read.outs, news).changes is False

    renamed = {**news, "display_name": "CERES platform"}
    assert provider.diff(created.id, read.outs, renamed).replaces == []
    updated = provider.update(created.id, read.outs, renamed)
    assert team["display_name"] == "CERES platform" == updated.outs["display_name"]

    team["display_name"] = "Changed by hand"
    drifted = provider.read(created.id, updated.outs)
    assert drifted.outs["display_name"] == "Changed by hand"
    assert provider.diff(created.id, drifted.outs, renamed).changes is True

    calls = len(fake.requests)
    provider.delete(created.id, drifted.outs)
    assert len(fake.requests) == calls and created.id in fake.teams  # left: it holds people's messages


def test_team_create_adopts_an_existing_team_and_converges_its_display_name(fake):
    existing = fake.add_team("ceres", "Old name")
    created = TeamProvider(**FAST).create(common(fake, team_name="ceres", display_name="CERES"))
    assert created.id == existing["id"] and existing["display_name"] == "CERES"
    assert fake.calls("POST") == [] and len(fake.teams) == 1


def test_team_deleted_by_hand_reads_as_gone(fake):
    provider = TeamProvider(**FAST)
    created = provider.create(common(fake, team_name="ceres", display_name="CERES"))
    fake.teams.clear()
    gone = provider.read(created.id, created.outs)
    assert gone.id == "" and gone.outs == {}


# Channel -------------------------------------------------------------------------------------------

def test_channel_lifecycle(fake):
    team = made_team(fake)
    provider = ChannelProvider(**FAST)
    news = checked(provider, common(fake, team_id=team["id"], channel_name="alerts", display_name="Alerts"))
    assert news["purpose"] == ""

    created = provider.create(news)
    channel = fake.channels[created.id]
    assert created.outs["channel_id"] == created.id and channel["type"] == "O" and channel["team_id"] == team["id"]

    read = provider.read(created.id, created.outs)
    assert read.id == created.id and provider.diff(created.id, read.outs, news).changes is False

    changed = {**news, "purpose": "Alertmanager and Grafana", "display_name": "Alerts!"}
    outs = provider.update(created.id, read.outs, changed).outs
    assert (channel["purpose"], channel["display_name"]) == ("Alertmanager and Grafana", "Alerts!")

    channel["purpose"] = "edited by hand"
    assert provider.read(created.id, outs).outs["purpose"] == "edited by hand"

    fake.archive_channel(created.id)
    assert provider.read(created.id, outs).id == ""

    provider.delete(created.id, outs)
    assert created.id in fake.channels  # left: it holds people's messages


def test_channel_create_adopts_an_existing_channel(fake):
    existing = made_channel(fake)
    created = ChannelProvider(**FAST).create(checked(ChannelProvider(), common(
        fake, team_id=existing["team_id"], channel_name="alerts", display_name="Alerts", purpose="p")))
    assert created.id == existing["id"] and existing["purpose"] == "p"
    assert fake.calls("POST") == []


# Incoming webhook ----------------------------------------------------------------------------------

def test_incoming_webhook_lifecycle_keeps_the_hook_id_secret(fake):
    channel = made_channel(fake)
    other = fake.add_channel(channel["team_id"], "builds", "Builds")
    provider = IncomingWebhookProvider(**FAST)
    news = checked(provider, common(fake, channel_id=channel["id"], display_name="Alertmanager", username="alerts"))
    assert news["channel_locked"] is True and news["icon_url"] == ""

    created = provider.create(news)
    hook_id = created.outs["hook_id"]
    assert hook_id in fake.hooks and created.id == hook_resource_id(hook_id) and hook_id not in created.id
    assert fake.hooks[hook_id]["username"] == "alerts" and fake.hooks[hook_id]["channel_locked"] is True
    assert_no_secrets(repr(created.outs), created.id, hook_id=hook_id)

    read = provider.read(created.id, created.outs)
    assert read.id == created.id and provider.diff(created.id, read.outs, news).changes is False

    moved = {**news, "channel_id": other["id"], "description": "from Alertmanager"}
    outcome = provider.diff(created.id, read.outs, moved)
    assert outcome.changes is True and outcome.replaces == []  # a channel change updates in place
    outs = provider.update(created.id, read.outs, moved).outs
    put = body(fake.calls("PUT")[-1])
    assert put["id"] == hook_id and put["channel_id"] == other["id"]
    assert fake.hooks[hook_id]["channel_id"] == other["id"] and outs["hook_id"] == hook_id

    fake.edit_hook(hook_id, display_name="renamed by hand", channel_locked=False)
    drifted = provider.read(created.id, outs)
    assert drifted.outs["display_name"] == "renamed by hand" and drifted.outs["channel_locked"] is False
    assert provider.diff(created.id, drifted.outs, moved).changes is True

    provider.delete(created.id, outs)
    assert hook_id not in fake.hooks
    provider.delete(created.id, outs)  # already gone: a 404 is success
    assert provider.read(created.id, outs).id == ""


def test_incoming_webhook_deleted_by_hand_reads_as_gone(fake):
    provider = IncomingWebhookProvider(**FAST)
    created = provider.create(common(fake, channel_id=made_channel(fake)["id"], display_name="CI", description="",
                                     username="", icon_url="", channel_locked=True))
    fake.delete_hook(created.outs["hook_id"])
    assert provider.read(created.id, created.outs).id == ""


def test_a_server_that_drops_the_username_is_reported_and_leaves_no_hook(fake):
    fake.username_override = False
    provider = IncomingWebhookProvider(**FAST)
    news = checked(provider, common(fake, channel_id=made_channel(fake)["id"], display_name="CI", username="ci-bot"))
    with pytest.raises(ApiError, match="EnablePostUsernameOverride") as caught:
        provider.create(news)
    assert fake.hooks == {}
    assert_no_secrets(str(caught.value))


# Failures ------------------------------------------------------------------------------------------

def test_5xx_then_success_is_retried(fake):
    fake.fail_next(2, status=503)
    created = TeamProvider(**FAST).create(common(fake, team_name="ceres", display_name="CERES"))
    assert created.id in fake.teams
    assert [r.method for r in fake.requests] == ["GET", "GET", "GET", "POST"]


def test_a_hanging_server_times_out_in_bounded_time(fake):
    fake.delay_next(2.0, count=20)
    provider = TeamProvider(total_timeout_s=1.5, request_timeout_s=0.3)
    with pytest.raises(ApiError, match="ReadTimeout") as caught:
        provider.create(common(fake, team_name="ceres", display_name="CERES"))
    assert "Mattermost team 'ceres'" in str(caught.value)
    assert_no_secrets(str(caught.value))


def test_a_refused_token_names_the_setting_not_the_token(fake):
    fake.token = "another-token"
    with pytest.raises(ApiError) as caught:
        TeamProvider(**FAST).create(common(fake, team_name="ceres", display_name="CERES"))
    assert caught.value.status == 401 and TOKEN_SETTING in str(caught.value)
    assert_no_secrets(str(caught.value))


def test_refusals_about_a_hook_never_quote_its_id(fake):
    fake.echo_path_in_errors = True
    provider = IncomingWebhookProvider(**FAST)
    created = provider.create(common(fake, channel_id=made_channel(fake)["id"], display_name="CI", description="",
                                     username="", icon_url="", channel_locked=True))
    hook_id = created.outs["hook_id"]
    fake.token = "revoked"
    with pytest.raises(ApiError) as caught:
        provider.update(created.id, created.outs, {**created.outs, "description": "x"})
    assert caught.value.status == 401 and "[secret]" in str(caught.value)
    assert_no_secrets(str(caught.value), hook_id=hook_id)


def test_the_server_refuses_what_check_would_have_caught_with_a_clear_400(fake):
    # Bypassing check: the server's own answer still names the resource and the fix.
    with pytest.raises(ApiError) as caught:
        TeamProvider(**FAST).create(common(fake, team_name="admins", display_name="Admins"))
    assert caught.value.status == 400
    assert "Mattermost team 'admins'" in str(caught.value) and "fix them in the stack config" in str(caught.value)


def test_moving_a_hook_to_another_team_is_refused_clearly(fake):
    provider = IncomingWebhookProvider(**FAST)
    created = provider.create(common(fake, channel_id=made_channel(fake)["id"], display_name="CI", description="",
                                     username="", icon_url="", channel_locked=True))
    elsewhere = fake.add_channel(fake.add_team("other", "Other")["id"], "alerts", "Alerts")
    with pytest.raises(ApiError, match="across teams") as caught:
        provider.update(created.id, created.outs, {**created.outs, "channel_id": elsewhere["id"]})
    assert caught.value.status == 400


# check and diff --------------------------------------------------------------------------------------

TEAM = {"api_url": "https://chat.example.com", "token": "t", "team_name": "ceres", "display_name": "CERES"}
CHANNEL = {"api_url": "https://chat.example.com", "token": "t", "team_id": "a" * 26, "channel_name": "alerts",
           "display_name": "Alerts"}
HOOK = {"api_url": "https://chat.example.com", "token": "t", "channel_id": "b" * 26, "display_name": "CI"}


@pytest.mark.parametrize("provider, news, prop", [
    (TeamProvider(), {**TEAM, "api_url": "ftp://chat.example.com"}, "api_url"),
    (TeamProvider(), {**TEAM, "api_url": "https://chat.example.com/"}, "api_url"),
    (TeamProvider(), {**TEAM, "token": ""}, "token"),
    (TeamProvider(), {**TEAM, "verify_tls": "no"}, "verify_tls"),
    (TeamProvider(), {**TEAM, "team_name": "c"}, "team_name"),
    (TeamProvider(), {**TEAM, "team_name": "x" * 65}, "team_name"),
    (TeamProvider(), {**TEAM, "team_name": "Ceres"}, "team_name"),
    (TeamProvider(), {**TEAM, "team_name": "ceres-"}, "team_name"),
    (TeamProvider(), {**TEAM, "team_name": "api-team"}, "team_name"),  # reserved prefix
    (TeamProvider(), {**TEAM, "team_name": "helpdesk"}, "team_name"),
    (TeamProvider(), {**TEAM, "display_name": ""}, "display_name"),
    (TeamProvider(), {**TEAM, "display_name": "é" * 65}, "display_name"),
    (ChannelProvider(), {**CHANNEL, "team_id": "ceres"}, "team_id"),
    (ChannelProvider(), {**CHANNEL, "channel_name": "Alerts"}, "channel_name"),
    (ChannelProvider(), {**CHANNEL, "channel_name": "-alerts"}, "channel_name"),
    (ChannelProvider(), {**CHANNEL, "channel_name": "a" * 65}, "channel_name"),
    (ChannelProvider(), {**CHANNEL, "channel_name": "f" * 40}, "channel_name"),
    (ChannelProvider(), {**CHANNEL, "channel_name": "a" * 26 + "__" + "b" * 26}, "channel_name"),
    (ChannelProvider(), {**CHANNEL, "purpose": "p" * 251}, "purpose"),
    (IncomingWebhookProvider(), {**HOOK, "channel_id": "alerts"}, "channel_id"),
    (IncomingWebhookProvider(), {**HOOK, "display_name": "é" * 33}, "display_name"),  # 66 bytes
    (IncomingWebhookProvider(), {**HOOK, "description": "d" * 501}, "description"),
    (IncomingWebhookProvider(), {**HOOK, "username": "CI Bot"}, "username"),
    (IncomingWebhookProvider(), {**HOOK, "username": "ci"}, "username"),
    (IncomingWebhookProvider(), {**HOOK, "username": "system"}, "username"),
    (IncomingWebhookProvider(), {**HOOK, "username": "u" * 65}, "username"),
    (IncomingWebhookProvider(), {**HOOK, "icon_url": "javascript:alert(1)"}, "icon_url"),
    (IncomingWebhookProvider(), {**HOOK, "icon_url": "https://x/" + "i" * 1024}, "icon_url"),
    (IncomingWebhookProvider(), {**HOOK, "channel_locked": "yes"}, "channel_locked"),
])
def test_check_refuses_what_mattermost_would_refuse(provider, news, prop):
    failures = provider.check({}, news).failures
    assert [f.property for f in failures] == [prop], [f.reason for f in failures]


def test_check_never_quotes_the_token():
    failures = TeamProvider().check({}, {**TEAM, "token": 12345}).failures
    assert failures and all("12345" not in f.reason for f in failures)


def test_check_accepts_unknown_values_during_preview():
    for provider, news in ((TeamProvider(), TEAM), (ChannelProvider(), CHANNEL), (IncomingWebhookProvider(), HOOK)):
        assert provider.check({}, {k: Unknown() for k in news}).failures == []


def test_check_accepts_valid_inputs_and_fills_defaults():
    inputs = checked(IncomingWebhookProvider(), {**HOOK, "username": "ci.bot", "icon_url": "https://x/i.png"})
    assert inputs["description"] == "" and inputs["channel_locked"] is True and inputs["provider_version"] == "1"
    checked(TeamProvider(), {**TEAM, "team_name": "a1"})
    checked(ChannelProvider(), {**CHANNEL, "channel_name": "a"})
    checked(ChannelProvider(), {**CHANNEL, "channel_name": "town_square-2"})


@pytest.mark.parametrize("provider, olds, change, replaces", [
    (TeamProvider(), TEAM, {"display_name": "New"}, []),
    (TeamProvider(), TEAM, {"team_name": "other"}, ["team_name"]),
    (TeamProvider(), TEAM, {"api_url": "https://other.example.com"}, ["api_url"]),
    (TeamProvider(), TEAM, {"token": "rotated"}, []),
    (ChannelProvider(), CHANNEL, {"purpose": "p"}, []),
    (ChannelProvider(), CHANNEL, {"team_id": "c" * 26}, ["team_id"]),
    (ChannelProvider(), CHANNEL, {"channel_name": "other"}, ["channel_name"]),
    (ChannelProvider(), CHANNEL, {"team_id": Unknown()}, ["team_id"]),
    (IncomingWebhookProvider(), HOOK, {"channel_id": "c" * 26}, []),
    (IncomingWebhookProvider(), HOOK, {"channel_id": Unknown()}, []),
    (IncomingWebhookProvider(), HOOK, {"api_url": "https://other.example.com"}, ["api_url"]),
])
def test_diff_replaces_only_where_the_thing_lives(provider, olds, change, replaces):
    outcome = provider.diff("id", olds, {**olds, **change})
    assert outcome.changes is True and outcome.replaces == replaces and outcome.delete_before_replace is False
    assert provider.diff("id", olds, dict(olds)).changes is False
