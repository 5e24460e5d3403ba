"""Wiki.js keeps its pages in Gitea, as a bot that can only write repositories; edits reach chat."""

from __future__ import annotations

import pytest

from cli.offline import SECRET_MARK, run_offline
from tests.conftest import stack_config
from tests.support import assert_no_plain_secrets, by_name


@pytest.fixture(scope="module")
def dev():
    config, secrets = stack_config("dev")
    return run_offline("dev", config, secrets)


def test_the_bot_is_made_in_gitea_with_a_narrow_token_under_the_edge(dev):
    edge = by_name(dev, "wiki-git-storage", "GitStorageEdge")
    account = by_name(dev, "ceres-wiki-account", "Command")
    assert account.parent == edge.urn
    assert account.inputs["create"].startswith("docker exec -i -u git -e GITEA_ADMIN_PASSWORD ceres-dev-gitea")
    script = account.inputs["stdin"]
    assert "--scopes write:repository,read:user" in script and "--admin" not in script
    assert "stdout" in account.secret_outputs
    assert by_name(dev, "gitea-bootstrap", "Command").urn in account.dependencies


def test_the_wiki_repository_belongs_to_the_bot_not_the_projects_organisation(dev):
    repository = by_name(dev, "wiki-repository", "gitea:Repository")
    assert (repository.inputs["owner"], repository.inputs["repo_name"]) == ("ceres-wiki", "wiki")
    assert repository.inputs["token"] == SECRET_MARK
    assert by_name(dev, "ceres-wiki-account", "Command").urn in repository.dependencies


def test_wikijs_syncs_with_the_repository_on_the_internal_network_with_the_bots_token(dev):
    storage = by_name(dev, "wiki-git-storage", "wikijs:GitStorage")
    assert storage.inputs["repo_url"] == "http://gitea:3000/ceres-wiki/wiki.git"
    assert storage.inputs["username"] == "ceres-wiki" and storage.inputs["branch"] == "main"
    assert storage.inputs["password"] == SECRET_MARK and storage.inputs["token"] == SECRET_MARK
    assert {"password", "token"} <= set(storage.secret_outputs)
    assert by_name(dev, "wiki-repository", "gitea:Repository").urn in storage.dependencies
    assert by_name(dev, "wikijs-bootstrap", "Command").urn in storage.dependencies


def test_page_edits_reach_the_dev_channel_through_the_repositorys_push_hook(dev):
    hook = by_name(dev, "chat-wikijs-webhook", "gitea:Webhook")
    assert (hook.inputs["scope"], hook.inputs["owner"], hook.inputs["repo"]) == ("repo", "ceres-wiki", "wiki")
    assert hook.inputs["events"] == ["push"] and hook.inputs["username"] == "Wiki.js"
    assert hook.inputs["channel"] == "dev" and hook.inputs["url"] == SECRET_MARK
    assert by_name(dev, "wiki-repository", "gitea:Repository").urn in hook.dependencies
    assert_no_plain_secrets(dev)


def test_without_git_storage_there_is_no_wiki_chat_and_the_matrix_says_why(offline):
    run = offline("dev", integrations={"wiki-git-storage": False})
    matrix = {e["id"]: e for e in run.outputs["integration_matrix"]}
    assert matrix["chat-wikijs"]["status"] == "missing"
    assert "wiki-git-storage" in matrix["chat-wikijs"]["reason"]
    assert not [r for r in run.resources if r.name in ("wiki-repository", "chat-wikijs-webhook", "ceres-wiki-account")]
