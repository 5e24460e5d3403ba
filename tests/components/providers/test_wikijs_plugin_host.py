"""The Wiki.js Git storage provider driven through the real plugin host (`python -m pulumi.dynamic`)
over gRPC, as the engine drives it, against the fake Wiki.js 2.5 GraphQL API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.providers.wikijs import PINNED_CONFIG, GitStorageProvider
from tests.components.providers.fake_wikijs import VALID_KEY, FakeWikiJs, running_fake_wikijs
from tests.components.providers.plugin_host import UNKNOWN, DiffOutcome, PluginHost, plugin_host, secret

PROVIDER = GitStorageProvider()
PASSWORD = "gitea-bot-token-0123456789abcdef"


@pytest.fixture(scope="module")
def host() -> Iterator[PluginHost]:
    # One host process for the module: starting one costs about a second of a shared CPU.
    with plugin_host() as running:
        yield running


@pytest.fixture
def fake() -> Iterator[FakeWikiJs]:
    with running_fake_wikijs() as running:
        yield running
        assert running.schema_errors == []


def props(api_url: str = "https://wikijs.ceres.example.com", **changes) -> dict:
    return {
        "api_url": api_url, "token": secret(VALID_KEY), "repo_url": "https://git.ceres.example.com/ceres/wiki.git",
        "branch": "main", "username": "ceres-bot", "password": secret(PASSWORD), "author_name": "CERES Wiki",
        "author_email": "wiki@ceres.example.com", "sync_interval": "PT5M", "verify_ssl": True, "verify_tls": True,
        **changes,
    }


def test_check_fills_the_fixed_inputs_and_passes_valid_input(host: PluginHost) -> None:
    inputs, failures = host.check(PROVIDER, {}, props())

    assert failures == []
    assert (inputs["enabled"], inputs["mode"], inputs["pinned_config"]) == (True, "sync", PINNED_CONFIG)


def test_check_reports_bad_input_by_property(host: PluginHost) -> None:
    _, failures = host.check(PROVIDER, {}, props(repo_url="git@git.example.com:ceres/wiki.git",
                                                 sync_interval="5 minutes", author_email="nobody"))

    assert sorted(prop for prop, _ in failures) == ["author_email", "repo_url", "sync_interval"]


def test_check_leaves_values_unknown_at_preview_alone(host: PluginHost) -> None:
    inputs, failures = host.check(PROVIDER, {}, props(token=UNKNOWN, password=UNKNOWN, repo_url=UNKNOWN))

    assert failures == []
    assert inputs["repo_url"] == UNKNOWN


def test_diff_updates_in_place_and_replaces_for_another_wiki(host: PluginHost) -> None:
    olds, _ = host.check(PROVIDER, {}, props())

    assert host.diff(PROVIDER, "git", olds, dict(olds)) == DiffOutcome(False, [], False)
    assert host.diff(PROVIDER, "git", olds, {**olds, "branch": "wiki"}) == DiffOutcome(True, [], False)
    assert host.diff(PROVIDER, "git", olds, {**olds, "password": "rotated"}) == DiffOutcome(True, [], False)
    assert host.diff(PROVIDER, "git", olds, {**olds, "api_url": "https://wiki2.example.com"}) == \
        DiffOutcome(True, ["api_url"], False)


def test_create_configures_the_wiki_through_the_host(host: PluginHost, fake: FakeWikiJs) -> None:
    fake.enable_backup()
    inputs, failures = host.check(PROVIDER, {}, props(fake.base_url))
    assert failures == []

    id_, outs = host.create(PROVIDER, inputs)

    assert id_ == "git"
    assert outs["repo_url"] == "https://git.ceres.example.com/ceres/wiki.git" and outs["enabled"] is True
    git = fake.targets["git"]
    assert (git["isEnabled"], git["mode"], git["config"]["basicPassword"]) == (True, "sync", PASSWORD)
    assert fake.targets["s3"]["config"]["secretAccessKey"] == "s3-secret-value"

    read_id, read_outs = host.read(PROVIDER, id_, outs)
    assert (read_id, read_outs) == (id_, outs)
