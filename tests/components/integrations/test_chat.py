"""Every event source reaches its channel: the chat edges of whole stacks, as the engine sees them."""

from __future__ import annotations

import pytest

from cli.offline import run_offline
from components import catalog
from tests.conftest import stack_config
from tests.support import assert_no_plain_secrets, by_name, of_type

# Source -> the channel purpose its events belong in (the routing table).
CHANNELS = {
    "gitea": "dev",
    "wikijs": "dev",
    "redmine": "projects",
    "alertmanager": "alerts",
    "grafana": "alerts",
    "uptime_kuma": "alerts",
    "nextcloud": "files",
}


@pytest.fixture(scope="module")
def dev():
    config, secrets = stack_config("dev")
    return run_offline("dev", config, secrets)


def edge_of(run, source: str):
    return by_name(run, f"chat-{source.replace('_', '-')}", "ChatWebhookEdge")


def test_every_chat_source_in_the_catalog_has_its_edge_in_the_dev_stack(dev):
    sources = {e.source for e in catalog.EDGES if e.kind == "chat_webhook" and e.target == "mattermost"}
    assert sources == set(CHANNELS)
    for source in sources:
        edge = edge_of(dev, source)
        assert edge.parent == by_name(dev, source, f"ceres:services:{type_name(dev, source)}").urn


def type_name(run, service: str) -> str:
    return next(r.type.rsplit(":", 1)[-1] for r in run.resources if r.name == service and r.type.startswith("ceres:services:"))


def test_each_source_gets_its_own_hook_locked_to_the_right_channel(dev):
    channels = {c.urn: c.inputs["channel_name"] for c in of_type(dev, "mattermost:Channel")}
    for source, purpose in CHANNELS.items():
        hook = by_name(dev, f"chat-{source.replace('_', '-')}-hook", "IncomingWebhook")
        assert hook.parent == edge_of(dev, source).urn
        assert hook.inputs["channel_locked"] is True
        assert "hook_id" in hook.secret_outputs and "token" in hook.secret_outputs
        channel = [urn for urn in hook.dependencies if urn in channels]
        assert [channels[urn] for urn in channel] == [purpose], source


def test_the_hub_and_source_apis_are_called_only_once_caddy_serves_them(dev):
    caddy = by_name(dev, "caddy", "Container").urn
    called = [r for r in dev.resources if r.type.startswith("pulumi-python:dynamic/")]
    assert called
    for resource in called:
        assert caddy in resource.dependencies, resource.name
    assert caddy in by_name(dev, "grafana-admin", "pulumi:providers:grafana").dependencies


def test_sources_wait_for_their_hook(dev):
    """A source configured with the hook URL (file, env, script or webhook) is created after the hook."""
    hooks = {h.urn for h in of_type(dev, "IncomingWebhook")}
    consumers = {
        "alertmanager": ("alertmanager", "Container"),
        "gitea": ("chat-gitea-webhook", "gitea:Webhook"),
        "wikijs": ("chat-wikijs-webhook", "gitea:Webhook"),
        "redmine": ("redmine-chat", "Command"),
        "uptime_kuma": ("uptime_kuma-notifications", "Command"),
        "grafana": ("grafana-chat-contact-point", "ContactPoint"),
        "nextcloud": ("nextcloud_relay", "Container"),
    }
    for source, (name, suffix) in consumers.items():
        hook = by_name(dev, f"chat-{source.replace('_', '-')}-hook", "IncomingWebhook").urn
        assert hook in by_name(dev, name, suffix).dependencies, source
    assert hooks


def test_gitea_posts_the_projects_organisation_events_to_dev_as_a_slack_hook(dev):
    webhook = by_name(dev, "chat-gitea-webhook", "gitea:Webhook")
    assert webhook.inputs["scope"] == "org" and webhook.inputs["owner"] == "ceres"
    assert set(webhook.inputs["events"]) == {"push", "pull_request", "issues", "release"}
    assert webhook.inputs["channel"] == "dev" and webhook.inputs["url"] == "[secret]"
    assert {"token", "url"} <= set(webhook.secret_outputs)
    organisation = by_name(dev, "gitea-organization", "gitea:Organization")
    assert organisation.urn in webhook.dependencies and organisation.inputs["org_name"] == "ceres"


def test_gitea_may_send_webhooks_to_the_hub_while_one_of_its_hooks_posts_there(dev, offline):
    def allowed(run) -> list[str]:
        envs = by_name(run, "gitea", "Container").inputs["envs"]
        return next(e for e in envs if e.startswith("GITEA__webhook__ALLOWED_HOST_LIST=")).split("=", 1)[1].split(",")

    assert "mattermost" in allowed(dev)
    projects_off = offline("dev", integrations={"chat-gitea": False})
    assert "chat-gitea-webhook" not in {w.name for w in of_type(projects_off, "gitea:Webhook")}
    assert not [r for r in projects_off.resources if r.name == "chat-gitea-hook"]
    assert "mattermost" in allowed(projects_off), "the wiki's push hook still posts to the hub"
    both_off = offline("dev", integrations={"chat-gitea": False, "chat-wikijs": False})
    assert "mattermost" not in allowed(both_off)


def test_switching_one_chat_edge_off_lowers_the_score_by_one(dev, offline):
    have = dev.outputs["integration_score"]["overall"]["have"]
    without = offline("dev", integrations={"chat-redmine": False})
    assert without.outputs["integration_score"]["overall"]["have"] == have - 1
    assert not [r for r in without.resources if r.name in ("chat-redmine-hook", "redmine-chat")]


def test_no_hook_url_or_token_is_plain_anywhere(dev):
    assert_no_plain_secrets(dev)


def test_the_hub_needs_caddy_and_says_so_before_anything_is_deployed(offline):
    from stacks.load import ConfigError

    with pytest.raises(ConfigError) as error:
        offline("dev", services={"caddy": {"enabled": False}})
    assert "services.mattermost" in str(error.value) and "caddy" in str(error.value)
