"""The Wiki.js Git storage provider against the fake Wiki.js 2.5 GraphQL API (fake_wikijs.py)."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from pulumi.output import Unknown

from components.providers import wikijs_api as w
from components.providers.rest import ApiError
from components.providers.wikijs import PINNED_CONFIG, GitStorageProvider
from tests.components.providers.fake_wikijs import MASK, VALID_KEY, FakeWikiJs, running_fake_wikijs

PASSWORD = "gitea-bot-token-0123456789abcdef"
PROVIDER = GitStorageProvider()


@pytest.fixture
def fake() -> Iterator[FakeWikiJs]:
    with running_fake_wikijs() as running:
        yield running
        assert running.schema_errors == [], "a request did not fit the Wiki.js 2.5 schema"


def news(fake: FakeWikiJs | None = None, **changes) -> dict:
    values = {
        "api_url": fake.base_url if fake else "https://wikijs.ceres.example.com",
        "token": VALID_KEY,
        "repo_url": "https://git.ceres.example.com/ceres/wiki.git",
        "username": "ceres-bot",
        "password": PASSWORD,
        "author_name": "CERES Wiki",
        "author_email": "wiki@ceres.example.com",
    }
    return {**values, **changes}


def checked(fake: FakeWikiJs | None = None, **changes) -> dict:
    result = PROVIDER.check({}, news(fake, **changes))
    assert result.failures == []
    return result.inputs


def git(fake: FakeWikiJs) -> dict:
    return fake.targets["git"]


# check ------------------------------------------------------------------------------------------

def test_check_fills_defaults_and_pins_what_the_resource_holds_fixed():
    inputs = checked()

    assert inputs["branch"] == "main" and inputs["sync_interval"] == "PT5M"
    assert inputs["verify_ssl"] is True and inputs["verify_tls"] is True
    assert (inputs["enabled"], inputs["mode"], inputs["pinned_config"]) == (True, "sync", PINNED_CONFIG)
    assert inputs["provider_version"] == "1"


@pytest.mark.parametrize(("prop", "value"), [
    ("repo_url", "git@git.ceres.example.com:ceres/wiki.git"),
    ("repo_url", "ssh://git.ceres.example.com/ceres/wiki.git"),
    ("repo_url", "https://bot:secret@git.ceres.example.com/ceres/wiki.git"),
    ("repo_url", "https://git.ceres.example.com"),
    ("api_url", "https://wikijs.ceres.example.com/"),
    ("api_url", "ftp://wikijs.ceres.example.com"),
    ("branch", "feature..x"),
    ("branch", "-main"),
    ("branch", "main.lock"),
    ("branch", "has space"),
    ("branch", ""),
    ("author_email", "not-an-email"),
    ("author_email", "Wiki <wiki@example.com>"),
    ("author_name", "Evil <x@y.z>"),
    ("author_name", ""),
    ("username", "two words"),
    ("sync_interval", "5m"),
    ("sync_interval", "PT0M"),
    ("sync_interval", "PT"),
    ("sync_interval", "P1DT"),
    ("verify_ssl", "yes"),
    ("password", ""),
])
def test_check_refuses_what_wikijs_or_git_would_refuse(prop, value):
    failures = PROVIDER.check({}, news(**{prop: value})).failures

    assert [f.property for f in failures] == [prop]


@pytest.mark.parametrize("interval", ["PT5M", "PT1H30M", "P1D", "PT45S", "P1W"])
def test_check_accepts_iso_8601_durations(interval):
    assert checked(sync_interval=interval)["sync_interval"] == interval


def test_check_names_every_missing_input():
    failures = PROVIDER.check({}, {"api_url": "https://wikijs.ceres.example.com"}).failures

    assert {f.property for f in failures} == {"token", "repo_url", "username", "password", "author_name",
                                              "author_email"}


def test_check_does_not_judge_values_unknown_at_preview():
    unknowns = {prop: Unknown() for prop in ("api_url", "token", "repo_url", "branch", "password", "author_email",
                                             "sync_interval")}
    result = PROVIDER.check({}, news(**unknowns))

    assert result.failures == []
    assert isinstance(result.inputs["repo_url"], Unknown)


# diff -------------------------------------------------------------------------------------------

def test_diff_updates_settings_in_place_and_replaces_for_another_wiki():
    olds = checked()

    assert PROVIDER.diff("git", olds, dict(olds)).changes is False
    for prop, value in (("branch", "wiki"), ("password", "rotated"), ("token", "other-key"), ("sync_interval", "PT1M")):
        result = PROVIDER.diff("git", olds, {**olds, prop: value})
        assert (result.changes, result.replaces) == (True, []), prop
    moved = PROVIDER.diff("git", olds, {**olds, "api_url": "https://wiki2.ceres.example.com"})
    assert (moved.changes, moved.replaces, moved.delete_before_replace) == (True, ["api_url"], False)
    assert PROVIDER.diff("git", olds, {**olds, "repo_url": Unknown()}).changes is True


def test_diff_sees_drift_read_back_from_the_wiki():
    olds = checked()

    assert PROVIDER.diff("git", {**olds, "enabled": False}, olds).changes is True
    assert PROVIDER.diff("git", {**olds, "pinned_config": {**PINNED_CONFIG, "authType": "ssh"}}, olds).changes is True


# lifecycle --------------------------------------------------------------------------------------

def test_lifecycle_create_read_update_drift_delete_keeps_other_targets(fake):
    fake.enable_backup()
    backup = {key: json.loads(json.dumps(fake.targets[key])) for key in ("s3", "disk")}
    props = checked(fake)

    created = PROVIDER.create(props)
    assert created.id == "git"
    assert created.outs == {key: props[key] for key in created.outs} and set(created.outs) == set(props)
    assert git(fake)["isEnabled"] is True and git(fake)["mode"] == "sync" and git(fake)["syncInterval"] == "PT5M"
    config = git(fake)["config"]
    assert {key: config[key] for key in ("authType", "repoUrl", "branch", "verifySSL", "basicUsername",
                                         "basicPassword", "defaultEmail", "defaultName", "localRepoPath",
                                         "alwaysNamespace")} == {
        "authType": "basic", "repoUrl": props["repo_url"], "branch": "main", "verifySSL": True,
        "basicUsername": "ceres-bot", "basicPassword": PASSWORD, "defaultEmail": "wiki@ceres.example.com",
        "defaultName": "CERES Wiki", "localRepoPath": "./data/repo", "alwaysNamespace": False}
    # The keys CERES does not manage went back as they were.
    assert config["sshPrivateKeyMode"] == "path" and config["gitBinaryPath"] == ""
    # The backup targets survived, their masked secret included.
    assert {key: fake.targets[key] for key in ("s3", "disk")} == backup

    read = PROVIDER.read("git", created.outs)
    assert read.id == "git" and read.outs == created.outs and read.inputs == created.outs
    assert PROVIDER.diff("git", read.outs, props).changes is False

    mutations = len(fake.mutations())
    moved = {**props, "branch": "wiki", "sync_interval": "PT15M"}
    updated = PROVIDER.update("git", created.outs, moved)
    assert updated.outs["branch"] == "wiki"
    assert len(fake.mutations()) == mutations + 1
    assert (git(fake)["config"]["branch"], git(fake)["syncInterval"]) == ("wiki", "PT15M")
    assert git(fake)["config"]["basicPassword"] == PASSWORD
    assert {key: fake.targets[key] for key in ("s3", "disk")} == backup

    # Drift by hand: someone disables the target and points it elsewhere.
    git(fake)["isEnabled"] = False
    git(fake)["config"]["repoUrl"] = "https://elsewhere.example.com/x.git"
    drifted = PROVIDER.read("git", updated.outs)
    assert drifted.outs["enabled"] is False and drifted.outs["repo_url"] == "https://elsewhere.example.com/x.git"
    assert drifted.inputs["enabled"] is False
    assert PROVIDER.diff("git", drifted.outs, moved).changes is True
    repaired = PROVIDER.update("git", drifted.outs, moved)
    assert git(fake)["isEnabled"] is True and git(fake)["config"]["repoUrl"] == props["repo_url"]
    assert PROVIDER.read("git", repaired.outs).outs == repaired.outs

    mutations = len(fake.mutations())
    PROVIDER.delete("git", repaired.outs)
    assert len(fake.mutations()) == mutations + 1
    assert git(fake)["isEnabled"] is False
    # Disabled, not wiped: the stored password is kept ("********" sent back keeps it).
    assert git(fake)["config"]["basicPassword"] == PASSWORD and git(fake)["config"]["branch"] == "wiki"
    assert {key: fake.targets[key] for key in ("s3", "disk")} == backup
    PROVIDER.delete("git", repaired.outs)  # already disabled: nothing to send
    assert len(fake.mutations()) == mutations + 1


def test_the_fake_punishes_a_client_that_sends_only_its_own_target(fake):
    # Why the provider sends every target back: here a target left out of the list is reset.
    fake.enable_backup()
    client = w.WikiJsClient(fake.base_url, VALID_KEY)

    client.update_targets([w.find(client.targets(), "git").as_input()], "only git")

    assert fake.targets["s3"]["isEnabled"] is False and fake.targets["s3"]["config"] == {}


def test_read_shows_auth_switched_to_ssh_by_hand_and_update_puts_basic_back(fake):
    props = checked(fake)
    created = PROVIDER.create(props)
    git(fake)["config"]["authType"] = "ssh"

    drifted = PROVIDER.read("git", created.outs)

    assert drifted.outs["pinned_config"]["authType"] == "ssh"
    PROVIDER.update("git", drifted.outs, props)
    assert git(fake)["config"]["authType"] == "basic"


def test_update_sends_nothing_when_the_wiki_already_matches(fake):
    props = checked(fake)
    created = PROVIDER.create(props)
    mutations = len(fake.mutations())

    PROVIDER.update("git", created.outs, {**props, "token": VALID_KEY})

    assert len(fake.mutations()) == mutations


def test_a_rotated_password_is_sent_although_the_wiki_never_shows_it(fake):
    props = checked(fake)
    created = PROVIDER.create(props)

    PROVIDER.update("git", created.outs, {**props, "password": "rotated-token"})

    assert git(fake)["config"]["basicPassword"] == "rotated-token"
    sent = [e for e in fake.mutations()[-1].variables["targets"] if e["key"] == "git"][0]["config"]
    assert {"key": "basicPassword", "value": json.dumps({"v": "rotated-token"})} in sent


def test_read_shows_a_password_cleared_by_hand_and_hides_a_kept_one(fake):
    created = PROVIDER.create(checked(fake))
    assert PROVIDER.read("git", created.outs).outs["password"] == PASSWORD

    git(fake)["config"]["basicPassword"] = ""

    assert PROVIDER.read("git", created.outs).outs["password"] == ""


def test_the_targets_query_never_shows_the_password(fake):
    PROVIDER.create(checked(fake))

    shown = w.WikiJsClient(fake.base_url, VALID_KEY).targets()

    assert w.find(shown, "git").config["basicPassword"] == MASK
    assert PASSWORD not in json.dumps(fake.shown_targets())


def test_create_adopts_a_git_target_set_up_by_hand(fake):
    git(fake).update(isEnabled=True, mode="push", config={**git(fake)["config"], "repoUrl": "https://old/x.git"})

    PROVIDER.create(checked(fake))

    assert (git(fake)["mode"], git(fake)["config"]["repoUrl"]) == ("sync", news()["repo_url"])


def test_a_wiki_without_the_git_module_reads_as_gone_and_refuses_create(fake):
    del fake.targets["git"]

    assert PROVIDER.read("git", checked(fake)).id == ""
    with pytest.raises(ApiError, match="no 'git' storage module"):
        PROVIDER.create(checked(fake))


def test_a_wiki_back_at_its_setup_wizard_holds_nothing_to_read_or_disable_but_cannot_be_configured(fake):
    fake.setup_wizard = True
    props = checked(fake)

    assert PROVIDER.read("git", props).id == ""
    PROVIDER.delete("git", props)
    with pytest.raises(ApiError) as caught:
        PROVIDER.create(props)
    assert caught.value.status == 404
    assert_no_secret(caught.value)


# failures ---------------------------------------------------------------------------------------

def assert_no_secret(error: BaseException) -> None:
    text = str(error)
    assert VALID_KEY not in text and PASSWORD not in text and "fake-wikijs-api-key" not in text


def test_5xx_then_success(fake):
    fake.fail_next(2, status=503)

    PROVIDER.create(checked(fake))

    assert git(fake)["isEnabled"] is True


def test_timeouts_give_up_within_the_bounded_total(fake, monkeypatch):
    monkeypatch.setattr(w.WikiJsClient, "request_timeout_s", 0.3)
    monkeypatch.setattr(w.WikiJsClient, "total_timeout_s", 1.0)
    fake.delay_next(1.0, count=10)

    with pytest.raises(ApiError, match="failed .* times within") as caught:
        PROVIDER.create(checked(fake))

    assert_no_secret(caught.value)


def test_a_wrong_key_is_the_guest_and_the_error_names_the_key_setting(fake):
    with pytest.raises(ApiError) as caught:
        PROVIDER.create(checked(fake, token="revoked-key-value"))

    assert caught.value.status == 403
    assert "Forbidden" in str(caught.value) and w.TOKEN_SETTING in str(caught.value)
    assert "revoked-key-value" not in str(caught.value)
    assert fake.mutations() == []


def test_401_from_a_proxy_in_front_names_the_key_setting(fake):
    fake.http_401 = True

    with pytest.raises(ApiError) as caught:
        PROVIDER.read("git", checked(fake))

    assert caught.value.status == 401 and w.TOKEN_SETTING in str(caught.value)
    assert_no_secret(caught.value)


def test_response_result_failure_becomes_a_clear_error(fake):
    fake.refuse_updates = True

    refused = "did not save the storage targets: Error \\(error 1\\): Git repository"
    with pytest.raises(ApiError, match=refused) as caught:
        PROVIDER.create(checked(fake))

    assert_no_secret(caught.value)


def test_graphql_errors_inside_a_200_become_a_clear_error(fake):
    fake.resolver_error = f"storage exploded while handling {PASSWORD}"

    with pytest.raises(ApiError, match="GraphQL errors: storage exploded") as caught:
        PROVIDER.create(checked(fake))

    assert_no_secret(caught.value)


def test_a_request_that_does_not_fit_the_schema_is_a_400_with_the_password_scrubbed(fake):
    client = w.WikiJsClient(fake.base_url, VALID_KEY, secrets=[PASSWORD])

    with pytest.raises(ApiError) as caught:
        client._graphql(f'query {{ storage {{ nosuch(x: "{PASSWORD}") }} }}', {}, "bad query")

    assert caught.value.status == 400
    assert_no_secret(caught.value)
    fake.schema_errors.clear()  # provoked on purpose


def test_a_wiki_that_does_not_keep_the_settings_is_reported(fake):
    fake.ignore_updates = True

    with pytest.raises(ApiError, match="did not keep .*enabled"):
        PROVIDER.create(checked(fake))


def test_delete_of_a_wiki_whose_git_target_is_already_off_sends_nothing(fake):
    PROVIDER.delete("git", checked(fake))

    assert fake.mutations() == []
