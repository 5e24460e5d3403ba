"""The repo-sync worker: Gitea's repositories, seen from Redmine and Nextcloud. A small stdlib
Python program (3.11+), rendered as source text, and the Dockerfile of its image.

Redmine reads Git only from a local path and Nextcloud shows files only from a folder, so the worker
keeps, for every repository of the projects organisation:

- the external tracker pointing at Redmine (`PATCH /api/v1/repos/{o}/{r}`, `has_issues` +
  `external_tracker` as in the Gitea API contract's EditRepoOption/ExternalTracker), only when the
  repository's GET answer differs;
- a bare mirror `<mirrors>/<org>/<repo>.git` (Redmine's repository path), made by `git clone
  --mirror` of Gitea's internal URL into a temporary name then renamed, updated by `git remote
  update --prune`; the token travels as an `http.<gitea>/.extraHeader` (Basic, token as password,
  which Gitea's basic auth accepts for git paths) through GIT_CONFIG_COUNT/KEY/VALUE in git's
  environment: never in argv, never in the stored remote URL or any config file;
- the default branch checked out into `<files>/projects/<repo>`: a plain tree with no `.git` (the
  git directory lives in the worker's own state dir), fetched from the mirror then `reset --hard`
  and `clean -ffdx`, world-readable so Nextcloud's user can show it;
- Redmine told through its repository web service (SysController, Redmine 5.1/6.0): `GET
  /sys/projects.json` lists active projects with the Repository module and their repository; a
  listed project without one gets `POST /sys/projects/<id>/repository.json` (`key`, `vendor=Git`,
  `repository[url]`); then `GET /sys/fetch_changesets?key&id` (404 when the project is not active
  or lacks the module; it answers 200 for a project without repository, so 404 cannot be used to
  detect that). Projects are made by people: a missing one is logged and skipped. Redmine is told
  only when the mirror's refs changed since it was last told successfully (so a failure retries).

The wiki repository (owner/name) gets the mirror and a checkout into `<files>/wiki` only.

Gitea's webhooks (`push`, `repository` created) arrive at `POST /gitea`, signed with HMAC-SHA256 in
`X-Gitea-Signature`; the answer is 202 at once and one worker thread does the work, in order, so a
push and a reconcile never touch the same repository at the same time. A reconcile (on start and
every interval) lists the organisation's repositories and converges each. Every git run and HTTP
call is bounded; failures are logged without secrets and retried on the next event or reconcile.

Pure functions, no Pulumi import; `tests/components/config/test_repo_sync.py` runs the program for
real against local bare repositories served by `git http-backend` and a fake Redmine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

PROGRAM_FILE = "repo_sync.py"
HOOK_PATH = "/gitea"
HEALTH_PATH = "/healthz"
PORT = 8080
# The official Redmine image runs as uid 999: git refuses repositories owned by another user
# ("dubious ownership"), so the worker writes the mirrors as the same uid. Alpine has no user 999
# (its group 999 is `ping`, hence the group `nogroup`).
UID = 999
MIRRORS_DIR = "/srv/repos/mirrors"
FILES_DIR = "/srv/repos/files"
STATE_DIR = "/var/lib/repo-sync"


@dataclass(frozen=True)
class Environment:
    """The environment variables the worker reads (names only; secrets are files they name)."""

    gitea_url: str = "CERES_GITEA_URL"  # internal, e.g. http://gitea:3000
    org: str = "CERES_GITEA_ORG"
    wiki_repo: str = "CERES_WIKI_REPO"  # owner/name; empty: no wiki
    gitea_token_file: str = "CERES_GITEA_TOKEN_FILE"
    webhook_secret_file: str = "CERES_WEBHOOK_SECRET_FILE"
    redmine_url: str = "CERES_REDMINE_URL"  # internal, e.g. http://redmine:3000
    redmine_public_url: str = "CERES_REDMINE_PUBLIC_URL"
    redmine_sys_key_file: str = "CERES_REDMINE_SYS_KEY_FILE"
    redmine_mirrors_dir: str = "CERES_REDMINE_MIRRORS_DIR"  # the mirrors as Redmine's container sees them
    mirrors_dir: str = "CERES_MIRRORS_DIR"
    files_dir: str = "CERES_FILES_DIR"
    state_dir: str = "CERES_STATE_DIR"
    reconcile_seconds: str = "CERES_RECONCILE_SECONDS"
    git_timeout_seconds: str = "CERES_GIT_TIMEOUT_SECONDS"
    http_timeout_seconds: str = "CERES_HTTP_TIMEOUT_SECONDS"
    listen_host: str = "CERES_LISTEN_HOST"
    port: str = "CERES_PORT"


ENV = Environment()
DEFAULTS = {
    "mirrors_dir": MIRRORS_DIR,
    "files_dir": FILES_DIR,
    "state_dir": STATE_DIR,
    "reconcile_seconds": "600",
    # A first mirror of a big repository takes a while; a stuck transfer must still end.
    "git_timeout_seconds": "600",
    "http_timeout_seconds": "20",
    "listen_host": "0.0.0.0",
    "port": str(PORT),
    "wiki_repo": "",
}


_PROGRAM = r'''
"""Rendered by CERES: Gitea repositories -> bare mirrors for Redmine, checkouts for Nextcloud."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONSTANTS = json.loads(__CONSTANTS__)
ENV = CONSTANTS["env"]
# Gitea owner and repository names ([-.\w]+, never "." or ".."): safe as path segments.
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
# Redmine project identifiers (Project::IDENTIFIER_MAX_LENGTH 100, lowercase, starts with a letter).
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
URL = re.compile(r"^https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?$")
MAX_BODY = 8 * 1024 * 1024
MAX_PAGES = 200


def log(message):
    sys.stderr.write("repo-sync: " + message + "\n")
    sys.stderr.flush()


class Failure(Exception):
    """A step that did not work; its text is safe to log."""


class Settings:
    """Read once at start; secrets are files read at each use, so a rotated one needs no restart."""

    def __init__(self, environ):
        def get(key):
            value = environ.get(ENV[key], "").strip() or CONSTANTS["defaults"].get(key)
            if value is None:
                raise SystemExit("repo-sync: " + ENV[key] + " is not set")
            return value

        def url(key):
            value = get(key).rstrip("/")
            if not URL.match(value):
                raise SystemExit("repo-sync: " + ENV[key] + " is not a plain http(s) URL")
            return value

        def number(key):
            try:
                value = float(get(key))
            except ValueError:
                raise SystemExit("repo-sync: " + ENV[key] + " is not a number")
            if value <= 0:
                raise SystemExit("repo-sync: " + ENV[key] + " must be positive")
            return value

        self.gitea = url("gitea_url")
        self.redmine = url("redmine_url")
        self.redmine_public = url("redmine_public_url")
        self.org = get("org")
        self.wiki = get("wiki_repo")
        if not NAME.match(self.org) or (self.wiki and not _full_name(self.wiki)):
            raise SystemExit("repo-sync: " + ENV["org"] + " or " + ENV["wiki_repo"] + " is not a Gitea name")
        self.secret_files = {key: get(key) for key in ("gitea_token_file", "webhook_secret_file", "redmine_sys_key_file")}
        for key in self.secret_files:
            try:
                self.secret(key)
            except Failure as error:
                raise SystemExit("repo-sync: " + str(error))
        self.mirrors = get("mirrors_dir")
        self.redmine_mirrors = environ.get(ENV["redmine_mirrors_dir"], "").strip() or self.mirrors
        self.files = get("files_dir")
        self.worktrees = os.path.join(get("state_dir"), "worktrees")
        self.reconcile_seconds = number("reconcile_seconds")
        self.git_timeout = number("git_timeout_seconds")
        self.http_timeout = number("http_timeout_seconds")
        self.listen = (get("listen_host"), int(get("port")))

    def secret(self, key):
        try:
            with open(self.secret_files[key], encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError as error:
            raise Failure(ENV[key] + " names a file that cannot be read (" + type(error).__name__ + ")")
        if not value:
            raise Failure(ENV[key] + " names an empty file")
        return value

    def scrub(self, text):
        """Text from a subprocess or a server, with anything secret-shaped masked."""
        for key in self.secret_files:
            try:
                value = self.secret(key)
            except Failure:
                continue
            for form in (value, _basic(value)):
                text = text.replace(form, "***")
        return text


def _full_name(text):
    parts = text.split("/")
    if len(parts) == 2 and all(NAME.match(part) for part in parts):
        return parts[0], parts[1]
    return None


def _basic(token):
    # Gitea's basic auth takes the token as the password (services/auth/basic.go); the name is free.
    return base64.b64encode(("repo-sync:" + token).encode("utf-8")).decode("ascii")


# Internal calls never go through a proxy the environment might name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_call(method, url, timeout, headers=None, body=None):
    """(status, body bytes). The URL is never logged: Redmine's key rides in its query string."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    where = method + " " + urllib.parse.urlsplit(url).path
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as error:
        return error.code, error.read(MAX_BODY)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise Failure(where + " failed: " + type(reason).__name__)


class Gitea:
    def __init__(self, settings):
        self.settings = settings

    def _api(self, method, path, payload=None):
        headers = {"Authorization": "token " + self.settings.secret("gitea_token_file"), "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        status, data = http_call(method, self.settings.gitea + "/api/v1" + path, self.settings.http_timeout, headers, body)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            raise Failure(method + " " + path + ": HTTP " + str(status) + " with a body that is not JSON")

    def repo(self, owner, name):
        """The repository, or None when Gitea does not have it (any more)."""
        status, found = self._api("GET", "/repos/" + owner + "/" + name)
        if status == 404:
            return None
        if status != 200 or not isinstance(found, dict) or not _full_name(str(found.get("full_name", ""))):
            raise Failure("GET /repos/" + owner + "/" + name + ": HTTP " + str(status))
        return found

    def edit(self, owner, name, changes):
        status, _ = self._api("PATCH", "/repos/" + owner + "/" + name, changes)
        if status != 200:
            raise Failure("PATCH /repos/" + owner + "/" + name + ": HTTP " + str(status))

    def org_repos(self):
        """Every repository of the organisation: pages until an empty one (the server may cap `limit`)."""
        found = []
        for page in range(1, MAX_PAGES + 1):
            path = "/orgs/" + self.settings.org + "/repos?" + urllib.parse.urlencode({"page": page, "limit": 50})
            status, repos = self._api("GET", path)
            if status != 200 or not isinstance(repos, list):
                raise Failure("GET /orgs/" + self.settings.org + "/repos: HTTP " + str(status))
            if not repos:
                return found
            found.extend(repo for repo in repos if isinstance(repo, dict))
        log("stopped listing after " + str(MAX_PAGES) + " pages")
        return found


class Git:
    def __init__(self, settings):
        self.settings = settings

    def __call__(self, *args, authenticated=False):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LC_ALL": "C",
            # Never wait for a password nobody will type.
            "GIT_TERMINAL_PROMPT": "0",
        }
        if authenticated:
            # Configuration from the environment (git 2.31+): not in argv, not in any config file,
            # and sent only to Gitea's URL.
            env.update({
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http." + self.settings.gitea + "/.extraHeader",
                "GIT_CONFIG_VALUE_0": "Authorization: Basic " + _basic(self.settings.secret("gitea_token_file")),
            })
        # Its own process group: a timeout kills git's helpers (remote-http, index-pack) too.
        process = subprocess.Popen(["git", *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = process.communicate(timeout=self.settings.git_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise Failure("git " + _verb(args) + " timed out after " + str(self.settings.git_timeout) + " s")
        if process.returncode != 0:
            raise Failure("git " + _verb(args) + " failed (" + str(process.returncode) + "): "
                          + self.settings.scrub(err.strip()[-500:]))
        return out

    def ok(self, *args):
        try:
            self(*args)
            return True
        except Failure:
            return False


def _verb(args):
    return next((arg for arg in args if not arg.startswith("-") and "/" not in arg), "?")


class Syncer:
    def __init__(self, settings):
        self.settings = settings
        self.gitea = Gitea(settings)
        self.git = Git(settings)
        # Per mirror: the refs Redmine last fetched successfully (in memory: a restart tells it once more).
        self.told_redmine = {}

    # -- what a job does --------------------------------------------------------------------------------

    def reconcile(self):
        repos = self.gitea.org_repos()
        for repo in repos:
            full = _full_name(str(repo.get("full_name", "")))
            if full and not self.is_wiki(*full):
                self.guarded(self.project, full[0], full[1])
        wiki = _full_name(self.settings.wiki) if self.settings.wiki else None
        if wiki:
            self.guarded(self.wiki, *wiki)
        log("reconciled " + str(len(repos)) + " organisation repositories")

    def guarded(self, step, owner, name):
        try:
            step(owner, name)
        except Failure as error:
            log(owner + "/" + name + ": " + str(error))

    def is_wiki(self, owner, name):
        return (owner + "/" + name).lower() == self.settings.wiki.lower()

    def is_project(self, owner):
        return owner.lower() == self.settings.org.lower()

    def project(self, owner, name):
        repo = self.gitea.repo(owner, name)
        if repo is None:
            log(owner + "/" + name + ": not in Gitea (deleted or renamed?), skipped")
            return
        owner, name = _full_name(repo["full_name"])
        try:
            self.ensure_tracker(owner, name, repo)
        except Failure as error:
            # The mirror and Redmine do not depend on the tracker link: go on.
            log(owner + "/" + name + ": " + str(error))
        mirror = self.sync_mirror(owner, name)
        self.sync_checkout(mirror, repo, os.path.join("projects", name))
        self.tell_redmine(mirror, name)

    def wiki(self, owner, name):
        repo = self.gitea.repo(owner, name)
        if repo is None:
            log(owner + "/" + name + ": the wiki repository is not in Gitea, skipped")
            return
        owner, name = _full_name(repo["full_name"])
        self.sync_checkout(self.sync_mirror(owner, name), repo, "wiki")

    # -- the steps ------------------------------------------------------------------------------------

    def wanted_tracker(self, name):
        base = self.settings.redmine_public
        return {
            "external_tracker_url": base + "/projects/" + name,
            "external_tracker_format": base + "/issues/{index}",
            "external_tracker_style": "numeric",
        }

    def ensure_tracker(self, owner, name, repo):
        wanted = self.wanted_tracker(name)
        current = repo.get("external_tracker") or {}
        if repo.get("has_issues") is True and all(current.get(key) == value for key, value in wanted.items()):
            return
        self.gitea.edit(owner, name, {"has_issues": True, "external_tracker": wanted})
        log(owner + "/" + name + ": external tracker set to Redmine")

    def sync_mirror(self, owner, name):
        path = os.path.join(self.settings.mirrors, owner, name + ".git")
        source = self.settings.gitea + "/" + owner + "/" + name + ".git"
        if os.path.isfile(os.path.join(path, "HEAD")):
            self.git("-C", path, "remote", "update", "--prune", authenticated=True)
            return path
        # Cloned aside then renamed: Redmine never reads a half-made mirror, a failed clone restarts clean.
        partial = path + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.git("clone", "--mirror", "--quiet", source, partial, authenticated=True)
        os.rename(partial, path)
        log(owner + "/" + name + ": mirrored")
        return path

    def sync_checkout(self, mirror, repo, relative):
        target = os.path.join(self.settings.files, relative)
        os.makedirs(target, exist_ok=True)
        branch = "refs/heads/" + str(repo.get("default_branch") or "main")
        if not self.git.ok("-C", mirror, "rev-parse", "--verify", "--quiet", branch + "^{commit}"):
            log(relative + ": default branch has no commit yet, nothing to check out")
            return
        # The git directory stays in the worker's state: the folder Nextcloud shows holds only files.
        gitdir = os.path.join(self.settings.worktrees, relative + ".git")
        if not os.path.isfile(os.path.join(gitdir, "HEAD")):
            os.makedirs(os.path.dirname(gitdir), exist_ok=True)
            self.git("init", "--quiet", "--bare", gitdir)
        self.git("--git-dir", gitdir, "fetch", "--quiet", "--no-tags", mirror, "+" + branch + ":refs/ceres/checkout")
        tree = ("--git-dir", gitdir, "--work-tree", target)
        self.git(*tree, "reset", "--quiet", "--hard", "refs/ceres/checkout")
        self.git(*tree, "clean", "-ffdxq")

    def tell_redmine(self, mirror, name):
        refs = hashlib.sha256(self.git("-C", mirror, "for-each-ref", "--format=%(objectname) %(refname)").encode()).hexdigest()
        if self.told_redmine.get(mirror) == refs:
            return
        if not IDENTIFIER.match(name):
            log(name + ": not a Redmine project identifier, Redmine not told")
            return
        project = self.redmine_project(name)
        if project is None:
            log(name + ": Redmine has no active project '" + name + "' with the Repository module; "
                "create it in Redmine, the next push or reconcile links it")
            return
        wanted = self.settings.redmine_mirrors.rstrip("/") + mirror[len(self.settings.mirrors.rstrip("/")):]
        repository = project.get("repository")
        if not repository:
            self.create_redmine_repository(name, wanted)
        elif repository.get("url") != wanted:
            log(name + ": Redmine's repository is " + str(repository.get("url")) + ", not this mirror; fetching it anyway")
        status, _ = self.redmine("GET", "/sys/fetch_changesets", {"id": name})
        if status == 404:
            log(name + ": Redmine's fetch_changesets answered 404 (project gone or not active)")
            return
        if status != 200:
            raise Failure("Redmine fetch_changesets: HTTP " + str(status))
        self.told_redmine[mirror] = refs
        log(name + ": Redmine fetched changesets")

    def redmine(self, method, path, params):
        params = dict(params, key=self.settings.secret("redmine_sys_key_file"))
        encoded = urllib.parse.urlencode(params)
        if method == "GET":
            return http_call(method, self.settings.redmine + path + "?" + encoded, self.settings.http_timeout)
        return http_call(method, self.settings.redmine + path, self.settings.http_timeout,
                         {"Content-Type": "application/x-www-form-urlencoded"}, encoded.encode("ascii"))

    def redmine_project(self, identifier):
        status, data = self.redmine("GET", "/sys/projects.json", {})
        if status != 200:
            raise Failure("Redmine /sys/projects: HTTP " + str(status) + (" (sys API off or wrong key?)" if status == 403 else ""))
        try:
            projects = json.loads(data)
        except ValueError:
            raise Failure("Redmine /sys/projects answered something that is not JSON")
        for entry in projects if isinstance(projects, list) else []:
            # ActiveRecord's to_json, with or without a root element.
            project = entry.get("project", entry) if isinstance(entry, dict) else {}
            if isinstance(project, dict) and project.get("identifier") == identifier:
                return project
        return None

    def create_redmine_repository(self, identifier, url):
        status, _ = self.redmine("POST", "/sys/projects/" + identifier + "/repository.json",
                                 {"vendor": "Git", "repository[url]": url})
        if status == 201:
            log(identifier + ": Redmine repository created at " + url)
        elif status != 409:  # 409: it has one already (made meanwhile)
            raise Failure("Redmine refused the repository for " + identifier + ": HTTP " + str(status)
                          + (" (is Git enabled in Redmine's repository settings?)" if status == 422 else ""))


class Work:
    """One queue, one worker thread: jobs run one at a time, a job already waiting is not queued twice."""

    def __init__(self, syncer):
        self.syncer = syncer
        self.queue = queue.Queue(maxsize=1000)
        self.lock = threading.Lock()
        self.pending = set()
        self.busy = False
        self.reconciles = 0
        self.done = 0

    def submit(self, job):
        with self.lock:
            if job in self.pending:
                return True
            try:
                self.queue.put_nowait(job)
            except queue.Full:
                return False
            self.pending.add(job)
            return True

    def status(self):
        with self.lock:
            return {"status": "ok", "queued": len(self.pending), "busy": self.busy,
                    "reconciles": self.reconciles, "done": self.done}

    def run(self):
        while True:
            job = self.queue.get()
            with self.lock:
                # Out of `pending` before it runs: an event arriving meanwhile queues it again.
                self.pending.discard(job)
                self.busy = True
            label = "/".join(job[2:]) or job[0]
            try:
                self.run_one(job)
            except Failure as error:
                log(label + ": " + str(error))
            except Exception as error:  # the worker thread must outlive any one bad job
                log(label + ": unexpected " + type(error).__name__ + ": " + self.syncer.settings.scrub(str(error))[:300])
            finally:
                with self.lock:
                    self.busy = False
                    self.done += 1
                    self.reconciles += job[0] == "reconcile"

    def run_one(self, job):
        if job[0] == "reconcile":
            self.syncer.reconcile()
        elif job[1] == "wiki":
            self.syncer.wiki(job[2], job[3])
        else:
            self.syncer.project(job[2], job[3])

    def every(self, seconds):
        while True:
            self.submit(("reconcile",))
            time.sleep(seconds)


class Garbage(ValueError):
    """A body that is not a Gitea webhook payload."""


def job_for(event, payload, syncer):
    """The job a signed webhook asks for, or None for an event the worker does not act on."""
    if not isinstance(payload, dict) or not isinstance(payload.get("repository"), dict):
        raise Garbage("no repository object")
    full = _full_name(str(payload["repository"].get("full_name", "")))
    if full is None:
        raise Garbage("repository.full_name is not owner/name")
    if event == "repository" and payload.get("action") != "created":
        return None
    if event not in ("push", "repository"):
        return None
    if syncer.is_wiki(*full):
        return ("repo", "wiki") + full
    if syncer.is_project(full[0]):
        return ("repo", "project") + full
    return None


def handler_for(settings, work):
    class Handler(BaseHTTPRequestHandler):
        server_version = "ceres-repo-sync"

        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == CONSTANTS["health_path"]:
                self.reply(200, work.status())
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            if self.path != CONSTANTS["hook_path"]:
                self.reply(404, {"error": "not found"})
                return
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self.reply(400, {"error": "a body with Content-Length is required"})
                return
            if not 0 < length <= MAX_BODY:
                self.reply(400, {"error": "body empty or too large"})
                return
            body = self.rfile.read(length)
            try:
                secret = settings.secret("webhook_secret_file")
            except Failure as error:
                log(str(error))
                self.reply(503, {"error": "webhook secret unavailable"})
                return
            expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
            given = self.headers.get("X-Gitea-Signature", "")
            if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
                self.reply(401, {"error": "bad or missing X-Gitea-Signature"})
                return
            try:
                job = job_for(self.headers.get("X-Gitea-Event", ""), json.loads(body.decode("utf-8")), work.syncer)
            except (Garbage, ValueError, UnicodeDecodeError) as error:
                self.reply(400, {"error": "not a Gitea webhook payload: " + str(error)[:200]})
                return
            if job is None:
                self.reply(202, {"status": "ignored"})
            elif work.submit(job):
                self.reply(202, {"status": "queued"})
            else:
                self.reply(503, {"error": "queue full; the next reconcile catches up"})

    return Handler


def main():
    # Nextcloud's user reads the checkouts and Redmine's the mirrors: files must be world-readable.
    os.umask(0o022)
    settings = Settings(os.environ)
    if shutil.which("git") is None:
        raise SystemExit("repo-sync: git is not installed")
    for folder in (settings.mirrors, settings.files, settings.worktrees):
        os.makedirs(folder, exist_ok=True)
    work = Work(Syncer(settings))
    threading.Thread(target=work.run, name="worker", daemon=True).start()
    threading.Thread(target=work.every, args=(settings.reconcile_seconds,), name="reconcile", daemon=True).start()
    server = ThreadingHTTPServer(settings.listen, handler_for(settings, work))
    server.daemon_threads = True
    log("listening on port " + str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
'''


def worker_source() -> str:
    """The worker's Python source (stdlib only, Python 3.11+, needs `git` 2.31+ on PATH)."""
    constants = {"env": asdict(ENV), "defaults": DEFAULTS, "hook_path": HOOK_PATH, "health_path": HEALTH_PATH}
    return _PROGRAM.replace("__CONSTANTS__", repr(json.dumps(constants))).lstrip()


_IMAGE = re.compile(r"[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?")


def dockerfile(base_image: str) -> str:
    """FROM the pinned python alpine image: git, a non-root user with Redmine's uid, the program.
    The build context holds the program as PROGRAM_FILE (worker_source())."""
    name, _, digest = base_image.partition("@")
    if not _IMAGE.fullmatch(base_image) or not (digest or ":" in name.rsplit("/", 1)[-1]):
        raise ValueError(f"base image {base_image!r} is not a pinned image reference (name:tag or @sha256)")
    return f"""\
# CERES repo-sync: Gitea repositories mirrored for Redmine, checked out for Nextcloud.
FROM {base_image}

# git comes at the version the base image's Alpine release ships (its apk index pins it).
# The data folders are made here, owned by the worker, so fresh named volumes take that ownership.
# hadolint ignore=DL3018
RUN apk add --no-cache git \\
 && adduser -S -D -H -u {UID} -G nogroup -h {STATE_DIR} -s /sbin/nologin repo-sync \\
 && install -d -o {UID} -g nogroup -m 0755 {MIRRORS_DIR} {FILES_DIR} {STATE_DIR}

COPY {PROGRAM_FILE} /usr/local/lib/ceres/{PROGRAM_FILE}

USER {UID}
ENV HOME={STATE_DIR} PYTHONUNBUFFERED=1
EXPOSE {PORT}
ENTRYPOINT ["python3", "/usr/local/lib/ceres/{PROGRAM_FILE}"]
"""


def image_tag(base_image: str) -> str:
    """A tag that changes with the Dockerfile or the program, so the container follows a new build."""
    content = hashlib.sha256((dockerfile(base_image) + worker_source()).encode()).hexdigest()[:12]
    return f"repo-sync-{content}"
