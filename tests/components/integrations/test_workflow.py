"""One workflow: repositories, tasks, the wiki and files wired together, as the engine sees it."""

from __future__ import annotations

import pytest

from cli.offline import SECRET_MARK, run_offline
from tests.conftest import stack_config
from tests.support import assert_no_plain_secrets, by_name, of_type

WORKFLOW_EDGES = ("tracker-gitea", "commits-redmine", "wiki-redmine", "files-gitea", "files-wikijs", "files-redmine")


@pytest.fixture(scope="module")
def dev():
    config, secrets = stack_config("dev")
    return run_offline("dev", config, secrets)


def mounts(run, container: str) -> dict[str, tuple[str, bool]]:
    inputs = by_name(run, container, "Container").inputs
    return {m["containerPath"]: (m.get("volumeName"), bool(m.get("readOnly"))) for m in inputs["volumes"]}


def test_every_workflow_edge_is_configured_under_its_consumer(dev):
    statuses = {e["id"]: e["status"] for e in dev.outputs["integration_matrix"]}
    assert all(statuses[edge] == "configured" for edge in WORKFLOW_EDGES)
    for edge, kind, parent in (("tracker-gitea", "IssueTrackerEdge", "gitea"), ("commits-redmine", "RepositoryMirrorEdge", "redmine"),
                               ("wiki-redmine", "ProjectLinkEdge", "redmine"), ("files-gitea", "FileMirrorEdge", "gitea"),
                               ("files-wikijs", "FileMirrorEdge", "wikijs"), ("files-redmine", "FileMirrorEdge", "redmine")):
        component = by_name(dev, edge, kind)
        assert component.parent.endswith(f"::{parent}"), edge


def test_the_repo_sync_writes_the_repositories_volume_that_redmine_and_nextcloud_only_read(dev):
    assert mounts(dev, "repo_sync")["/srv/repos"] == ("ceres-dev-repositories", False)
    assert mounts(dev, "redmine")["/srv/repos"] == ("ceres-dev-repositories", True)
    assert mounts(dev, "nextcloud")["/srv/repos"] == ("ceres-dev-repositories", True)
    assert mounts(dev, "nextcloud")["/srv/redmine-files"] == ("ceres-dev-redmine-files", True)
    owned = by_name(dev, "local-repositories-init", "Container")
    assert owned.inputs["command"] == ["chown", "999:999", "/volume"]
    for container in ("repo_sync", "redmine", "nextcloud"):
        assert owned.urn in by_name(dev, container, "Container").dependencies, container


def test_gitea_tells_the_repo_sync_of_pushes_and_new_repositories_with_a_signed_hook(dev):
    organisation = by_name(dev, "repo_sync-webhook", "gitea:Webhook")
    assert (organisation.inputs["scope"], organisation.inputs["owner"]) == ("org", "ceres")
    assert organisation.inputs["hook_type"] == "gitea" and organisation.inputs["secret"] == SECRET_MARK
    assert organisation.inputs["url"] == "http://repo-sync:8080/gitea"
    assert set(organisation.inputs["events"]) == {"push", "repository"}
    wiki = by_name(dev, "repo_sync-wiki-webhook", "gitea:Webhook")
    assert (wiki.inputs["scope"], wiki.inputs["owner"], wiki.inputs["repo"]) == ("repo", "ceres-wiki", "wiki")
    envs = by_name(dev, "gitea", "Container").inputs["envs"]
    allowed = next(e for e in envs if e.startswith("GITEA__webhook__ALLOWED_HOST_LIST=")).split("=", 1)[1].split(",")
    assert "repo-sync" in allowed


def test_the_worker_gets_its_secrets_only_as_files(dev):
    container = by_name(dev, "repo_sync", "Container")
    uploads = {u["file"]: u["content"] for u in container.inputs["uploads"]}
    assert {path: uploads[path] for path in uploads if path.startswith("/run/ceres/")} == {
        "/run/ceres/gitea-token": SECRET_MARK, "/run/ceres/webhook-secret": SECRET_MARK,
        "/run/ceres/redmine-sys-key": SECRET_MARK,
    }
    envs = dict(e.split("=", 1) for e in container.inputs["envs"])
    assert envs["CERES_GITEA_ORG"] == "ceres" and envs["CERES_WIKI_REPO"] == "ceres-wiki/wiki"
    assert envs["CERES_REDMINE_PUBLIC_URL"] == "https://redmine.ceres.localhost"
    assert not by_name(dev, "repo_sync", "Container").inputs.get("ports")
    assert_no_plain_secrets(dev)


def test_redmine_links_commits_and_wiki_and_nextcloud_shows_the_three_folders(dev):
    commits = by_name(dev, "redmine-commits", "Command")
    assert commits.parent.endswith("::commits-redmine")
    wiki = by_name(dev, "redmine-wiki", "Command")
    assert "https://wikijs.ceres.localhost" in wiki.inputs["stdin"]
    folders = by_name(dev, "nextcloud-folders", "Command").inputs["stdin"]
    for folder, path in (("/Repositories", "/srv/repos/files/projects"), ("/Wiki", "/srv/repos/files/wiki"),
                         ("/Redmine files", "/srv/redmine-files")):
        assert folder in folders and path in folders


def test_without_the_repo_sync_the_edges_it_carries_say_why(offline):
    run = offline("dev", services={"repo_sync": {"enabled": False}})
    matrix = {e["id"]: e for e in run.outputs["integration_matrix"]}
    for edge in ("tracker-gitea", "commits-redmine", "files-gitea", "files-wikijs"):
        assert matrix[edge]["status"] == "missing" and "repo_sync" in matrix[edge]["reason"], edge
    assert matrix["files-redmine"]["status"] == matrix["wiki-redmine"]["status"] == "configured"
    assert "/srv/repos" not in mounts(run, "redmine") and "/srv/repos" not in mounts(run, "nextcloud")
    assert not [r for r in run.resources if r.name in ("repo_sync", "local-repositories-init")]


def test_switching_one_workflow_edge_off_lowers_the_score_by_one(dev, offline):
    have = dev.outputs["integration_score"]["overall"]["have"]
    run = offline("dev", integrations={"commits-redmine": False})
    assert run.outputs["integration_score"]["overall"]["have"] == have - 1
    assert "/srv/repos" not in mounts(run, "redmine")
    assert not [r for r in run.resources if r.name == "redmine-commits"]
