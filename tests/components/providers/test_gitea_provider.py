"""The Gitea providers' whole lifecycle against a fake Gitea that checks every request against the contract."""

from __future__ import annotations

import json

import pytest
from pulumi.output import Unknown

from components.providers.gitea import OrganizationProvider, RepositoryProvider, WebhookProvider
from components.providers.gitea_api import TOKEN_SETTING
from components.providers.rest import ApiError
from tests.components.providers.fake_gitea import VALID_TOKEN, running_fake_gitea

HOOK_URL = "https://chat.example.com/hooks/s3cr3th00kid0123456789"
FAST = {"total_timeout_s": 3.0, "request_timeout_s": 1.0}


@pytest.fixture
def fake():
    with running_fake_gitea() as server:
        yield server
        assert server.contract_errors == [], "requests outside the Gitea contract"


def checked(provider, news: dict, olds: dict | None = None) -> dict:
    result = provider.check(olds or {}, news)
    assert result.failures == [], [f.reason for f in result.failures]
    return result.inputs


def common(fake, **values) -> dict:
    return {"api_url": fake.base_url, "token": VALID_TOKEN, "verify_tls": True, **values}


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert VALID_TOKEN not in text and HOOK_URL not in text and "s3cr3th00k" not in text


def body(record) -> dict:
    return json.loads(record.body)


# Organisation ------------------------------------------------------------------------------------

def test_organization_lifecycle_adopts_updates_sees_drift_and_leaves_it(fake):
    provider = OrganizationProvider(**FAST)
    news = checked(provider, common(fake, org_name="ceres", full_name="CERES"))
    assert news["visibility"] == "private" and news["provider_version"] == "1"

    id_, outs = provider.create(news).id, provider.create(news).outs  # second create adopts, no duplicate
    assert id_ == "ceres" and outs["org_id"] == fake.orgs["ceres"]["id"]
    assert len(fake.calls("POST")) == 1
    assert_no_secrets(repr(outs))
    assert outs["token"] == VALID_TOKEN  # stored for later calls, listed as a secret output

    read = provider.read(id_, outs)
    assert read.id == "ceres" and provider.diff(id_, read.inputs, news).changes is False

    renamed = checked(provider, {**news, "full_name": "CERES platform"})
    diff = provider.diff(id_, outs, renamed)
    assert diff.changes and diff.replaces == []
    outs = provider.update(id_, outs, renamed).outs
    assert fake.orgs["ceres"]["full_name"] == "CERES platform"
    assert body(fake.calls("PATCH")[-1]) == {"full_name": "CERES platform", "visibility": "private"}

    fake.orgs["ceres"]["visibility"] = "public"  # changed by hand
    read = provider.read(id_, outs)
    assert read.outs["visibility"] == "public" and read.inputs["visibility"] == "public"
    assert provider.diff(id_, read.inputs, renamed).changes is True

    provider.delete(id_, outs)  # leaves the organisation and its repositories
    assert "ceres" in fake.orgs and fake.calls("DELETE") == []

    del fake.orgs["ceres"]  # deleted by hand
    assert provider.read(id_, outs).id == ""


def test_organization_adoption_converges_the_settings(fake):
    fake.add_org("ceres", full_name="old", visibility="public")
    provider = OrganizationProvider(**FAST)
    outs = provider.create(checked(provider, common(fake, org_name="ceres", full_name="CERES"))).outs
    assert fake.calls("POST") == [] and outs["org_id"] == fake.orgs["ceres"]["id"]
    assert fake.orgs["ceres"]["full_name"] == "CERES" and fake.orgs["ceres"]["visibility"] == "private"


# Repository --------------------------------------------------------------------------------------

def test_repository_lifecycle(fake):
    fake.add_org("ceres")
    provider = RepositoryProvider(**FAST)
    news = checked(provider, common(fake, owner="ceres", repo_name="platform", description="IaC"))
    result = provider.create(news)
    assert result.id == "ceres/platform"
    sent = body(fake.calls("POST")[-1])
    assert sent == {"name": "platform", "description": "IaC", "private": True, "auto_init": True, "default_branch": "main"}
    assert fake.calls("POST")[-1].path == "/api/v1/orgs/ceres/repos"
    outs = result.outs
    assert outs["clone_url"].endswith("/ceres/platform.git") and outs["html_url"].endswith("/ceres/platform")
    assert outs["repo_id"] == fake.repos[("ceres", "platform")]["id"]

    assert provider.create(news).outs["repo_id"] == outs["repo_id"]  # adopts the existing repository
    assert len(fake.calls("POST")) == 1

    changed = checked(provider, {**news, "description": "Infrastructure"})
    assert provider.diff(result.id, outs, changed).replaces == []
    outs = provider.update(result.id, outs, changed).outs
    assert body(fake.calls("PATCH")[-1]) == {"description": "Infrastructure"}

    fake.repos[("ceres", "platform")]["private"] = False  # made public by hand
    read = provider.read(result.id, outs)
    assert read.inputs["private"] is False and provider.diff(result.id, read.inputs, changed).changes

    provider.delete(result.id, outs)
    assert ("ceres", "platform") in fake.repos and fake.calls("DELETE") == []
    del fake.repos[("ceres", "platform")]
    assert provider.read(result.id, outs).id == ""


def test_a_repository_of_the_tokens_own_account_is_made_through_user_repos(fake):
    fake.user = "ceres-wiki"
    provider = RepositoryProvider(**FAST)
    result = provider.create(checked(provider, common(fake, owner="ceres-wiki", repo_name="wiki")))
    assert result.id == "ceres-wiki/wiki" and fake.calls("POST")[-1].path == "/api/v1/user/repos"
    # A bot's token (write:repository, read:user) may not read organisations: none is asked for.
    assert not [call for call in fake.calls("GET") if call.path.startswith("/api/v1/orgs/")]
    assert result.outs["clone_url"].endswith("/ceres-wiki/wiki.git")


def test_repository_of_someone_else_names_the_repository_and_the_fix(fake):
    provider = RepositoryProvider(**FAST)
    with pytest.raises(ApiError) as error:
        provider.create(checked(provider, common(fake, owner="nobody", repo_name="x")))
    message = str(error.value)
    assert "Gitea repository nobody/x" in message and "neither an organisation nor the account" in message
    assert error.value.status == 404
    assert_no_secrets(message)


# Webhook -----------------------------------------------------------------------------------------

def hook_news(fake, provider, **values) -> dict:
    base = common(fake, scope="repo", owner="ceres", repo="platform", url=HOOK_URL, channel="town-square",
                  events=["push", "issues", "pull_request"], username="gitea")
    return checked(provider, {**base, **values})


def with_repo(fake) -> None:
    fake.add_org("ceres")
    RepositoryProvider(**FAST).create(checked(RepositoryProvider(), common(fake, owner="ceres", repo_name="platform")))


def test_webhook_lifecycle_on_a_repository(fake):
    with_repo(fake)
    provider = WebhookProvider(**FAST)
    news = hook_news(fake, provider)
    result = provider.create(news)
    sent = body(fake.calls("POST")[-1])
    assert fake.calls("POST")[-1].path == "/api/v1/repos/ceres/platform/hooks"
    assert sent == {"type": "slack", "active": True, "events": ["push", "issues", "pull_request"], "branch_filter": "*",
                    "config": {"url": HOOK_URL, "content_type": "json", "channel": "town-square", "username": "gitea"}}
    outs = result.outs
    assert result.id == str(outs["hook_id"]) and fake.hooks[outs["hook_id"]]["active"] is True
    assert_no_secrets(repr(outs), result.id)

    # Gitea answers with the whole issue/pull-request families: that is not drift.
    read = provider.read(result.id, outs)
    assert provider.diff(result.id, read.inputs, news).changes is False

    narrowed = hook_news(fake, provider, events=["push"], branch_filter="main")
    diff = provider.diff(result.id, outs, narrowed)
    assert diff.changes and diff.replaces == []
    outs = provider.update(result.id, outs, narrowed).outs
    patch = body(fake.calls("PATCH")[-1])
    assert patch["events"] == ["push"] and patch["branch_filter"] == "main" and patch["active"] is True
    assert fake.hooks[outs["hook_id"]]["events"] == ["push"]

    hook = fake.hooks[outs["hook_id"]]  # changed by hand in the UI
    hook.update(active=False, events=["push", "release"])
    hook["_meta"]["channel"] = "off-topic"
    hook["_url"] = "https://elsewhere.example.com/hooks/other"
    read = provider.read(result.id, outs)
    assert read.inputs["active"] is False and read.inputs["channel"] == "off-topic"
    assert read.inputs["events"] == ["push", "release"] and read.inputs["url"].startswith("https://elsewhere")
    assert_no_secrets(repr(read.outs))
    assert provider.diff(result.id, read.inputs, narrowed).changes is True
    provider.update(result.id, read.outs, narrowed)
    assert hook["active"] is True and hook["_meta"]["channel"] == "town-square" and hook["_url"] == HOOK_URL

    del fake.hooks[outs["hook_id"]]  # deleted by hand
    assert provider.read(result.id, outs).id == ""
    provider.delete(result.id, outs)  # a 404 on delete is success
    assert fake.calls("DELETE")[-1].path == f"/api/v1/repos/ceres/platform/hooks/{outs['hook_id']}"


def test_webhook_on_an_organisation(fake):
    fake.add_org("ceres")
    provider = WebhookProvider(**FAST)
    result = provider.create(hook_news(fake, provider, scope="org", repo=""))
    assert fake.calls("POST")[-1].path == "/api/v1/orgs/ceres/hooks"
    assert fake.hooks[result.outs["hook_id"]]["_scope"] == ("org", "ceres", "")
    provider.delete(result.id, result.outs)
    assert fake.hooks == {}


def test_system_webhook_is_a_system_hook_not_a_default_one(fake):
    provider = WebhookProvider(**FAST)
    news = hook_news(fake, provider, scope="system", owner="", repo="")
    result = provider.create(news)
    assert fake.calls("POST")[-1].path == "/api/v1/admin/hooks"
    assert body(fake.calls("POST")[-1])["config"]["is_system_webhook"] == "true"
    assert [h["id"] for h in fake.system_hooks()] == [result.outs["hook_id"]]
    assert provider.read(result.id, result.outs).id == result.id

    del fake.hooks[result.outs["hook_id"]]
    # Gitea answers 500 to a PATCH of a missing system hook; the provider looks first and says what to do.
    with pytest.raises(ApiError, match="pulumi refresh"):
        provider.update(result.id, result.outs, hook_news(fake, provider, scope="system", owner="", repo="",
                                                          events=["push"]))
    assert fake.calls("PATCH") == []


# Failures ----------------------------------------------------------------------------------------

def test_5xx_then_success_is_retried(fake):
    fake.fail_next(2, status=503)
    provider = OrganizationProvider(**FAST)
    outs = provider.create(checked(provider, common(fake, org_name="ceres"))).outs
    assert outs["org_id"] and len(fake.calls("GET")) == 3


def test_a_server_that_stays_down_fails_in_bounded_time(fake):
    fake.fail_next(100, status=502)
    provider = OrganizationProvider(total_timeout_s=1.5, request_timeout_s=1.0)
    with pytest.raises(ApiError, match="failed .* times") as error:
        provider.create(checked(provider, common(fake, org_name="ceres")))
    assert_no_secrets(str(error.value))


def test_a_hanging_server_times_out(fake):
    fake.delay_next(1.5, count=5)
    provider = OrganizationProvider(total_timeout_s=1.0, request_timeout_s=0.3)
    with pytest.raises(ApiError, match="ReadTimeout") as error:
        provider.read("ceres", common(fake, org_name="ceres"))
    assert_no_secrets(str(error.value))


def test_a_refused_token_names_the_setting_not_the_token(fake):
    fake.token = "another-token"
    provider = WebhookProvider(**FAST)
    with pytest.raises(ApiError) as error:
        provider.create(hook_news(fake, provider, scope="system", owner="", repo=""))
    assert error.value.status == 401 and TOKEN_SETTING in str(error.value)
    assert_no_secrets(str(error.value))


def test_server_refusals_are_clear_and_never_quote_the_hook_url(fake):
    with_repo(fake)
    fake.echo_body_in_errors = True  # a server quoting the request back must not leak the hook URL
    provider = WebhookProvider(**FAST)
    bad = {**hook_news(fake, provider), "channel": "Town Square"}  # past check(), as from an old state
    with pytest.raises(ApiError) as error:
        provider.create(bad)
    assert error.value.status == 400 and "Invalid slack channel name" in str(error.value)
    assert "Gitea repository ceres/platform webhook" in str(error.value)
    assert_no_secrets(str(error.value))
    with pytest.raises(ApiError) as error:
        provider.create({**hook_news(fake, provider), "url": "ftp://chat.example.com/s3cr3th00k"})
    assert error.value.status == 422 and "Invalid url" in str(error.value)
    assert_no_secrets(str(error.value))


def test_the_server_refuses_a_reserved_org_name_with_422(fake):
    provider = OrganizationProvider(**FAST)
    with pytest.raises(ApiError) as error:
        provider.create(common(fake, org_name="admin", full_name="", visibility="private"))
    assert error.value.status == 422 and "fix them in the stack config" in str(error.value)


# check() and diff() ------------------------------------------------------------------------------

BASE = {"api_url": "https://git.example.com", "token": "t"}


@pytest.mark.parametrize("provider, news, prop", [
    (OrganizationProvider(), {**BASE, "api_url": "https://git.example.com/"}, "api_url"),
    (OrganizationProvider(), {**BASE, "api_url": "ftp://git.example.com", "org_name": "a"}, "api_url"),
    (OrganizationProvider(), {**BASE, "token": "", "org_name": "a"}, "token"),
    (OrganizationProvider(), {**BASE, "org_name": "x" * 41}, "org_name"),
    (OrganizationProvider(), {**BASE, "org_name": "my org"}, "org_name"),
    (OrganizationProvider(), {**BASE, "org_name": "a--b"}, "org_name"),
    (OrganizationProvider(), {**BASE, "org_name": "Admin"}, "org_name"),
    (OrganizationProvider(), {**BASE, "org_name": "a", "visibility": "secret"}, "visibility"),
    (OrganizationProvider(), {**BASE, "org_name": "a", "full_name": "x" * 101}, "full_name"),
    (RepositoryProvider(), {**BASE, "owner": "a", "repo_name": "x" * 101}, "repo_name"),
    (RepositoryProvider(), {**BASE, "owner": "a", "repo_name": "site.git"}, "repo_name"),
    (RepositoryProvider(), {**BASE, "owner": "a", "repo_name": "-"}, "repo_name"),
    (RepositoryProvider(), {**BASE, "owner": "a", "repo_name": "a/b"}, "repo_name"),
    (RepositoryProvider(), {**BASE, "owner": "a", "repo_name": "r", "default_branch": "a..b"}, "default_branch"),
    (RepositoryProvider(), {**BASE, "owner": "a", "repo_name": "r", "private": "yes"}, "private"),
    (WebhookProvider(), {**BASE, "scope": "repo", "owner": "a", "url": HOOK_URL, "channel": "c", "events": ["push"]}, "repo"),
    (WebhookProvider(), {**BASE, "scope": "system", "owner": "a", "url": HOOK_URL, "channel": "c", "events": ["push"]}, "owner"),
    (WebhookProvider(), {**BASE, "scope": "team", "url": HOOK_URL, "channel": "c", "events": ["push"]}, "scope"),
    (WebhookProvider(), {**BASE, "scope": "system", "url": "ftp://x/y", "channel": "c", "events": ["push"]}, "url"),
    (WebhookProvider(), {**BASE, "scope": "system", "url": HOOK_URL, "channel": "Town Square", "events": ["push"]}, "channel"),
    (WebhookProvider(), {**BASE, "scope": "system", "url": HOOK_URL, "channel": "c" * 81, "events": ["push"]}, "channel"),
    (WebhookProvider(), {**BASE, "scope": "system", "url": HOOK_URL, "channel": "c", "events": ["pushes"]}, "events"),
    (WebhookProvider(), {**BASE, "scope": "system", "url": HOOK_URL, "channel": "c", "events": []}, "events"),
    (WebhookProvider(), {**BASE, "scope": "system", "url": HOOK_URL, "channel": "c"}, "events"),
])
def test_check_refuses_what_gitea_would_refuse(provider, news, prop):
    failures = provider.check({}, news).failures
    assert prop in [f.property for f in failures], [f.reason for f in failures]
    assert all("t" != f.reason for f in failures)


def test_check_accepts_unknown_values_during_preview():
    for marker in (Unknown(),):  # what the plugin host hands over for the engine's unknown marker
        assert OrganizationProvider().check({}, {**BASE, "api_url": marker, "org_name": marker}).failures == []
        assert RepositoryProvider().check({}, {**BASE, "owner": marker, "repo_name": marker}).failures == []
        hook = {**BASE, "token": marker, "scope": "repo", "owner": marker, "repo": marker, "url": marker,
                "channel": marker, "events": ["push", marker]}
        assert WebhookProvider().check({}, hook).failures == []


def test_check_accepts_a_valid_hook_and_fills_the_fixed_fields():
    inputs = WebhookProvider().check({}, {**BASE, "scope": "system", "url": HOOK_URL, "channel": "#ops",
                                          "events": ["push", "issues_only", "pull_request_review"]})
    assert inputs.failures == []
    assert inputs.inputs["active"] is True and inputs.inputs["content_type"] == "json"
    assert inputs.inputs["branch_filter"] == "*" and inputs.inputs["owner"] == "" and inputs.inputs["repo"] == ""


def test_diff_replaces_only_for_where_the_thing_lives():
    org = OrganizationProvider()
    olds = org.check({}, {**BASE, "org_name": "a"}).inputs
    assert org.diff("a", olds, {**olds, "org_name": "b"}).replaces == ["org_name"]
    assert org.diff("a", olds, {**olds, "api_url": "https://other.example.com"}).replaces == ["api_url"]
    token = org.diff("a", olds, {**olds, "token": "rotated"})
    assert token.changes and token.replaces == []

    hook = WebhookProvider()
    olds = hook.check({}, {**BASE, "scope": "repo", "owner": "a", "repo": "r", "url": HOOK_URL, "channel": "c",
                           "events": ["push", "release"]}).inputs
    assert hook.diff("1", olds, {**olds, "events": ["release", "push"]}).changes is False
    for prop, value in (("scope", "org"), ("owner", "b"), ("repo", "s"), ("owner", Unknown())):
        assert hook.diff("1", olds, {**olds, prop: value}).replaces == [prop]
    for prop, value in (("url", "https://chat.example.com/hooks/new"), ("channel", "d"), ("events", ["push"]),
                        ("branch_filter", "main"), ("username", "bot")):
        diff = hook.diff("1", olds, {**olds, prop: value})
        assert diff.changes and diff.replaces == [], prop


# Gitea-type webhooks (the repo-sync worker) -------------------------------------------------------

WORKER_URL = "http://repo-sync:8080/gitea"
SIGNING_SECRET = "s1gn1ng-s3cr3t-0123456789abcdef"
ROTATED_SECRET = "r0tat3d-s1gn1ng-fedcba9876543210"


def gitea_hook_news(fake, provider, **values) -> dict:
    base = common(fake, scope="org", owner="ceres", hook_type="gitea", url=WORKER_URL, secret=SIGNING_SECRET,
                  events=["push", "repository"])
    return checked(provider, {**base, **values})


def assert_no_signing_secret(*texts: str) -> None:
    assert_no_secrets(*texts)
    for text in texts:
        assert SIGNING_SECRET not in text and ROTATED_SECRET not in text and "s3cr3t" not in text


def test_gitea_type_org_hook_lifecycle_with_a_signing_secret(fake):
    fake.add_org("ceres")
    provider = WebhookProvider(**FAST)
    news = gitea_hook_news(fake, provider)
    assert news["channel"] == "" and news["username"] == ""
    result = provider.create(news)
    sent = fake.calls("POST")[-1]
    assert sent.path == "/api/v1/orgs/ceres/hooks"
    assert body(sent) == {"type": "gitea", "active": True, "events": ["push", "repository"], "branch_filter": "*",
                          "config": {"url": WORKER_URL, "content_type": "json", "secret": SIGNING_SECRET}}
    number = result.outs["hook_id"]
    hook = fake.hooks[number]
    assert hook["type"] == "gitea" and hook["_secret"] == SIGNING_SECRET
    assert_no_signing_secret(repr(result.outs), result.id)

    # GET never shows the secret; the read keeps the input's, so nothing looks drifted.
    read = provider.read(result.id, result.outs)
    assert "secret" not in fake._public(hook)["config"]
    assert read.inputs["secret"] == SIGNING_SECRET and read.inputs["hook_type"] == "gitea"
    assert provider.diff(result.id, read.inputs, news).changes is False
    assert_no_signing_secret(repr(read.outs), repr(read.inputs))

    # A secret changed by hand in Gitea cannot be seen (documented); a changed input updates in place.
    hook["_secret"] = "changed-by-hand"
    assert provider.diff(result.id, provider.read(result.id, result.outs).inputs, news).changes is False
    rotated = gitea_hook_news(fake, provider, secret=ROTATED_SECRET)
    diff = provider.diff(result.id, result.outs, rotated)
    assert diff.changes and diff.replaces == []
    outs = provider.update(result.id, result.outs, rotated).outs
    patch = fake.calls("PATCH")[-1]
    assert patch.path == f"/api/v1/orgs/ceres/hooks/{number}"
    assert body(patch)["config"] == {"url": WORKER_URL, "content_type": "json", "secret": ROTATED_SECRET}
    assert hook["_secret"] == ROTATED_SECRET and outs["secret"] == ROTATED_SECRET
    assert_no_signing_secret(repr(outs))

    hook.update(active=False, events=["push"])  # changed by hand in the UI
    hook["_url"] = "http://elsewhere:8080/gitea"
    read = provider.read(result.id, outs)
    assert read.inputs["active"] is False and read.inputs["events"] == ["push"]
    assert read.inputs["url"] == "http://elsewhere:8080/gitea" and read.inputs["secret"] == ROTATED_SECRET
    diff = provider.diff(result.id, read.inputs, rotated)
    assert diff.changes and diff.replaces == []
    provider.update(result.id, read.outs, rotated)
    assert hook["active"] is True and hook["events"] == ["push", "repository"] and hook["_url"] == WORKER_URL
    assert hook["_secret"] == ROTATED_SECRET

    assert provider.diff(result.id, outs, {**rotated, "hook_type": "slack", "channel": "ops"}).replaces == ["hook_type"]

    provider.delete(result.id, outs)
    assert fake.hooks == {} and fake.calls("DELETE")[-1].path == f"/api/v1/orgs/ceres/hooks/{number}"
    assert provider.read(result.id, outs).id == ""


def test_gitea_type_hook_without_a_secret_is_allowed(fake):
    fake.add_org("ceres")
    provider = WebhookProvider(**FAST)
    news = gitea_hook_news(fake, provider, secret="")
    result = provider.create(news)
    assert body(fake.calls("POST")[-1])["config"] == {"url": WORKER_URL, "content_type": "json", "secret": ""}
    assert provider.diff(result.id, provider.read(result.id, result.outs).inputs, news).changes is False


def test_a_slack_hook_can_carry_a_secret_and_drop_it_again(fake):
    with_repo(fake)
    provider = WebhookProvider(**FAST)
    signed = hook_news(fake, provider, secret=SIGNING_SECRET)
    result = provider.create(signed)
    assert body(fake.calls("POST")[-1])["config"]["secret"] == SIGNING_SECRET
    unsigned = hook_news(fake, provider)
    provider.update(result.id, result.outs, unsigned)
    # Gitea keeps a secret a PATCH leaves out: dropping it must send it empty.
    assert body(fake.calls("PATCH")[-1])["config"]["secret"] == ""
    assert fake.hooks[result.outs["hook_id"]]["_secret"] == ""


def test_a_slack_hook_from_a_state_before_hook_type_and_secret_shows_no_change():
    provider = WebhookProvider()
    news = provider.check({}, {**BASE, "scope": "system", "url": HOOK_URL, "channel": "ops", "events": ["push"]}).inputs
    legacy = {key: value for key, value in news.items() if key not in ("hook_type", "secret")}
    assert provider.diff("1", legacy, news).changes is False
    assert provider.diff("1", legacy, {**news, "hook_type": "gitea"}).replaces == ["hook_type"]


def test_the_signing_secret_never_shows_in_server_errors(fake):
    fake.add_org("ceres")
    fake.echo_body_in_errors = True  # a server quoting the request back must not leak the secret
    provider = WebhookProvider(**FAST)
    news = gitea_hook_news(fake, provider)
    with pytest.raises(ApiError) as error:
        provider.create({**news, "url": "ftp://repo-sync/gitea"})  # past check(), as from an old state
    assert error.value.status == 422 and "Invalid url" in str(error.value)
    assert_no_signing_secret(str(error.value), repr(error.value))

    result = provider.create(news)
    with pytest.raises(ApiError) as error:
        provider.update(result.id, result.outs, {**news, "secret": ROTATED_SECRET, "url": "ftp://repo-sync/gitea"})
    assert error.value.status == 422
    assert_no_signing_secret(str(error.value), repr(error.value))

    fake.token = "another-token"
    with pytest.raises(ApiError) as error:
        provider.update(result.id, result.outs, {**news, "secret": ROTATED_SECRET})
    assert error.value.status == 401
    assert_no_signing_secret(str(error.value))


GITEA_HOOK = {**BASE, "scope": "system", "hook_type": "gitea", "url": WORKER_URL, "secret": SIGNING_SECRET,
              "events": ["push", "repository"]}


@pytest.mark.parametrize("news, prop", [
    ({**GITEA_HOOK, "channel": "ops"}, "channel"),
    ({**GITEA_HOOK, "username": "gitea"}, "username"),
    ({**GITEA_HOOK, "hook_type": "discord"}, "hook_type"),
    ({**GITEA_HOOK, "secret": 1234}, "secret"),
    ({**GITEA_HOOK, "events": ["push", "repo"]}, "events"),
    ({**GITEA_HOOK, "url": "ftp://repo-sync/gitea"}, "url"),
    ({**GITEA_HOOK, "hook_type": "slack"}, "channel"),  # a Slack hook still needs its channel
    ({**GITEA_HOOK, "hook_type": "slack", "channel": ""}, "channel"),
])
def test_check_refuses_a_bad_gitea_type_hook_without_quoting_the_secret(news, prop):
    failures = WebhookProvider().check({}, news).failures
    assert prop in [f.property for f in failures], [f.reason for f in failures]
    assert_no_signing_secret(*(f.reason for f in failures))


def test_check_accepts_a_gitea_type_hook_for_the_worker():
    for news in (GITEA_HOOK, {k: v for k, v in GITEA_HOOK.items() if k != "secret"},
                 {**GITEA_HOOK, "channel": "", "username": ""}):
        result = WebhookProvider().check({}, news)
        assert result.failures == [], [f.reason for f in result.failures]
        assert result.inputs["channel"] == "" and result.inputs["content_type"] == "json"
    assert WebhookProvider().check({}, {k: v for k, v in GITEA_HOOK.items() if k != "secret"}).inputs["secret"] == ""
    unknown = {**GITEA_HOOK, "hook_type": Unknown(), "secret": Unknown(), "channel": Unknown()}
    assert WebhookProvider().check({}, unknown).failures == []
    assert WebhookProvider().check({}, {**GITEA_HOOK, "channel": Unknown()}).failures == []


def test_the_webhook_resource_lists_the_secret_as_a_secret_output_only_when_given(monkeypatch):
    from pulumi.dynamic import Resource

    from components.providers.gitea import Webhook

    seen: list[tuple[dict, list[str]]] = []

    def record(self, provider, name, props, opts=None):  # instead of registering with an engine
        seen.append((props, opts.additional_secret_outputs))

    monkeypatch.setattr(Resource, "__init__", record)
    Webhook("sync", api_url="https://git.example.com", token="t", scope="org", owner="ceres", url=WORKER_URL,
            events=["push", "repository"], hook_type="gitea", secret=SIGNING_SECRET)
    Webhook("chat", api_url="https://git.example.com", token="t", scope="system", url=HOOK_URL, channel="ops",
            events=["push"])
    (sync, sync_secrets), (chat, chat_secrets) = seen
    assert sorted(sync_secrets) == ["secret", "token", "url"] and sorted(chat_secrets) == ["token", "url"]
    assert sync["hook_type"] == "gitea" and sync["channel"] == "" and sync["secret"] == SIGNING_SECRET
    assert chat["hook_type"] == "slack" and chat["secret"] == ""
