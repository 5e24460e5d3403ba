"""The Gitea providers driven through the real plugin host (`python -m pulumi.dynamic`) as the engine does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.providers.gitea import OrganizationProvider, RepositoryProvider, WebhookProvider
from tests.components.providers.fake_gitea import VALID_TOKEN, running_fake_gitea
from tests.components.providers.plugin_host import UNKNOWN, PluginHost, ProviderError, plugin_host, secret

HOOK_URL = "https://chat.example.com/hooks/s3cr3th00kid0123456789"
FAST = {"total_timeout_s": 3.0, "request_timeout_s": 1.0}


@pytest.fixture(scope="module")
def host() -> Iterator[PluginHost]:
    with plugin_host() as running:  # one host process per module: it costs a second of shared CPU
        yield running


@pytest.fixture
def fake():
    with running_fake_gitea() as server:
        yield server
        assert server.contract_errors == [], "requests outside the Gitea contract"


def hook_news(fake, **values) -> dict:
    return {"api_url": fake.base_url, "token": secret(VALID_TOKEN), "scope": "repo", "owner": "ceres",
            "repo": "platform", "url": secret(HOOK_URL), "channel": "town-square", "events": ["push", "issues"],
            **values}


def test_check_fills_defaults_and_reports_gitea_rules_by_property(host: PluginHost, fake) -> None:
    inputs, failures = host.check(WebhookProvider(), {}, hook_news(fake))
    assert failures == []
    assert inputs["active"] is True and inputs["content_type"] == "json" and inputs["branch_filter"] == "*"
    assert inputs["provider_version"] == "1"

    _, failures = host.check(WebhookProvider(), {}, hook_news(fake, channel="Town Square", events=["pushes"]))
    assert sorted(prop for prop, _ in failures) == ["channel", "events"]
    assert all(VALID_TOKEN not in reason and HOOK_URL not in reason for _, reason in failures)

    _, failures = host.check(OrganizationProvider(), {}, {"api_url": fake.base_url, "token": "t", "org_name": "a" * 41})
    assert [prop for prop, _ in failures] == ["org_name"]


def test_check_and_diff_leave_unknown_values_alone_at_preview(host: PluginHost, fake) -> None:
    news = hook_news(fake, owner=UNKNOWN, repo=UNKNOWN, url=UNKNOWN, events=["push", UNKNOWN])
    _, failures = host.check(WebhookProvider(), {}, news)
    assert failures == []

    olds, _ = host.check(WebhookProvider(), {}, hook_news(fake))
    outcome = host.diff(WebhookProvider(), "1", olds, {**olds, "owner": UNKNOWN})
    assert outcome.changes is True and outcome.replaces == ["owner"]


def test_diff_through_the_host(host: PluginHost, fake) -> None:
    olds, _ = host.check(RepositoryProvider(), {}, {"api_url": fake.base_url, "token": "t", "owner": "ceres",
                                                    "repo_name": "platform"})
    assert host.diff(RepositoryProvider(), "ceres/platform", olds, dict(olds)).changes is False
    assert host.diff(RepositoryProvider(), "ceres/platform", olds, {**olds, "repo_name": "p2"}).replaces == ["repo_name"]
    outcome = host.diff(RepositoryProvider(), "ceres/platform", olds, {**olds, "description": "new"})
    assert outcome.changes is True and outcome.replaces == []


def test_create_read_update_delete_through_the_host(host: PluginHost, fake) -> None:
    org_inputs, _ = host.check(OrganizationProvider(**FAST), {}, {"api_url": fake.base_url, "token": secret(VALID_TOKEN),
                                                                  "org_name": "ceres"})
    org_id, org_outs = host.create(OrganizationProvider(**FAST), org_inputs)
    assert org_id == "ceres" and org_outs["org_id"] == fake.orgs["ceres"]["id"]

    repo_inputs, _ = host.check(RepositoryProvider(**FAST), {}, {"api_url": fake.base_url, "token": secret(VALID_TOKEN),
                                                                 "owner": "ceres", "repo_name": "platform"})
    repo_id, repo_outs = host.create(RepositoryProvider(**FAST), repo_inputs)
    assert repo_id == "ceres/platform" and repo_outs["clone_url"].endswith("/ceres/platform.git")

    provider = WebhookProvider(**FAST)
    inputs, _ = host.check(provider, {}, hook_news(fake))
    hook_id, outs = host.create(provider, inputs)
    number = int(outs["hook_id"])  # protobuf numbers come back as floats
    assert hook_id == str(number) and fake.hooks[number]["_url"] == HOOK_URL
    assert outs["token"] == VALID_TOKEN and outs["url"] == HOOK_URL  # the engine marks both secret (Resource opts)

    fake.hooks[number]["active"] = False  # disabled by hand
    read_id, read_outs = host.read(provider, hook_id, outs)
    assert read_id == hook_id and read_outs["active"] is False

    changed, _ = host.check(provider, inputs, hook_news(fake, events=["push"]))
    updated = host.update(provider, hook_id, read_outs, changed)
    assert updated["events"] == ["push"] and fake.hooks[number]["active"] is True

    host.delete(provider, hook_id, updated)
    assert fake.hooks == {}
    assert host.read(provider, hook_id, updated) == ("", {})  # gone: the engine drops it from state


def test_errors_through_the_host_never_show_the_token(host: PluginHost, fake) -> None:
    fake.token = "another-token"
    provider = OrganizationProvider(**FAST)
    inputs, _ = host.check(provider, {}, {"api_url": fake.base_url, "token": secret(VALID_TOKEN), "org_name": "ceres"})
    with pytest.raises(ProviderError) as error:
        host.create(provider, inputs)
    assert "401" in error.value.details and VALID_TOKEN not in error.value.details


WORKER_URL = "http://repo-sync:8080/gitea"
SIGNING_SECRET = "s1gn1ng-s3cr3t-0123456789abcdef"


def gitea_hook_news(fake, **values) -> dict:
    return {"api_url": fake.base_url, "token": secret(VALID_TOKEN), "scope": "org", "owner": "ceres",
            "hook_type": "gitea", "url": secret(WORKER_URL), "secret": secret(SIGNING_SECRET),
            "events": ["push", "repository"], **values}


def test_check_and_create_a_gitea_type_hook_for_the_worker(host: PluginHost, fake) -> None:
    _, failures = host.check(WebhookProvider(), {}, gitea_hook_news(fake, channel="ops", username="gitea"))
    assert sorted(prop for prop, _ in failures) == ["channel", "username"]
    assert all(SIGNING_SECRET not in reason and VALID_TOKEN not in reason for _, reason in failures)

    _, failures = host.check(WebhookProvider(), {}, gitea_hook_news(fake, hook_type=UNKNOWN, channel=UNKNOWN))
    assert failures == []

    fake.add_org("ceres")
    provider = WebhookProvider(**FAST)
    inputs, failures = host.check(provider, {}, gitea_hook_news(fake))
    assert failures == [] and inputs["channel"] == "" and inputs["hook_type"] == "gitea"
    hook_id, outs = host.create(provider, inputs)
    number = int(outs["hook_id"])
    hook = fake.hooks[number]
    assert hook_id == str(number) and hook["type"] == "gitea" and hook["_secret"] == SIGNING_SECRET
    assert outs["secret"] == SIGNING_SECRET  # the engine marks it secret (Resource opts)

    rotated, _ = host.check(provider, inputs, gitea_hook_news(fake, secret=secret("r0tat3d")))
    outcome = host.diff(provider, hook_id, outs, rotated)
    assert outcome.changes is True and outcome.replaces == []
    assert host.diff(provider, hook_id, outs, {**rotated, "hook_type": "slack"}).replaces == ["hook_type"]
