"""A fake of Redmine's repository web service (SysController, Redmine 5.1/6.0), 127.0.0.1 only.

What it copies from app/controllers/sys_controller.rb and config/routes.rb:
- every action first checks `key` (query or form) against the sys API key: 403 otherwise;
- `GET /sys/projects(.json)`: active projects with the Repository module, as JSON with
  `id, identifier, name, is_public, status` and `repository` (`{id, url}` or null);
- `POST /sys/projects/:id/repository(.json)` with `vendor` and `repository[...]`: 404 for an unknown
  project, 409 if it has a repository, 201 `{"repository-git": {id, url}}`, 422 when it does not save;
- `GET|POST /sys/fetch_changesets` with optional `id` (identifier or number): 404 unless the project
  is active with the module, else 200 (also for a project without repository).
Knobs: `hang()` holds every answer until `release()` (teardown releases it), `projects` to edit.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Iterator
from urllib.parse import parse_qsl, urlsplit

from tests.support import serve

HOLD_SECONDS = 60


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]  # without the key
    key_ok: bool


@dataclass
class FakeRedmine:
    key: str
    projects: dict[str, dict] = field(default_factory=dict)  # identifier -> {"repository": ..., "active": bool}
    calls: list[Call] = field(default_factory=list)
    base_url: str = ""
    _held: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._held.set()

    def add_project(self, identifier: str, repository_url: str | None = None, active: bool = True) -> None:
        number = len(self.projects) + 1
        repository = {"id": number, "url": repository_url} if repository_url else None
        self.projects[identifier] = {"id": number, "identifier": identifier, "name": identifier.title(),
                                     "is_public": True, "status": 1, "repository": repository, "active": active}

    def hang(self) -> None:
        self._held.clear()

    def release(self) -> None:
        self._held.set()

    def fetches(self, identifier: str) -> int:
        return sum(1 for c in self.calls if c.path == "/sys/fetch_changesets" and c.params.get("id") == identifier)

    def creations(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path.endswith("/repository.json")]

    def answer(self, method: str, path: str, params: dict[str, str]) -> tuple[int, object]:
        key_ok = params.pop("key", None) == self.key
        with self._lock:
            self.calls.append(Call(method, path, params, key_ok))
        self._held.wait(HOLD_SECONDS)
        if not key_ok:
            return 403, "Access denied. Repository management WS is disabled or key is invalid."
        listed = {k: p for k, p in self.projects.items() if p["active"]}
        parts = path.removesuffix(".json").strip("/").split("/")
        match (method, parts):
            case ("GET", ["sys", "projects"]):
                return 200, [{k: v for k, v in p.items() if k != "active"} for p in listed.values()]
            case ("POST", ["sys", "projects", identifier, "repository"]):
                project = self.projects.get(identifier)
                if project is None:
                    return 404, ""
                if project["repository"]:
                    return 409, ""
                url = params.get("repository[url]", "")
                if params.get("vendor") != "Git" or not url.startswith("/"):
                    return 422, ""
                project["repository"] = {"id": 100 + project["id"], "url": url}
                return 201, {"repository-git": project["repository"]}
            case ("GET" | "POST", ["sys", "fetch_changesets"]):
                if "id" in params and params["id"] not in listed:
                    return 404, ""
                return 200, ""
        return 404, ""


@contextmanager
def fake_redmine(key: str) -> Iterator[FakeRedmine]:
    fake = FakeRedmine(key=key)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def handle_any(self) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                params.update(parse_qsl(self.rfile.read(length).decode()))
            status, body = fake.answer(self.command, url.path, params)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = handle_any

    with serve(Handler) as port:
        fake.base_url = f"http://127.0.0.1:{port}"
        try:
            yield fake
        finally:
            # A held answer would keep the server's shutdown waiting.
            fake.release()
