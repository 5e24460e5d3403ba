"""A fake Wiki.js 2.5 GraphQL API (the storage part) for the provider tests: 127.0.0.1 only, state in memory.

GraphQL runs on graphql-core against SCHEMA_SDL, copied from requarks/wiki (2.x line, read at commit
0d6676c19b7c335dda3cb85af5cfbc7176826c28): server/graph/schemas/storage.graphql verbatim, and from
common.graphql the `@auth` directive, KeyValuePair(Input), DefaultResponse and ResponseStatus; the
root Query/Mutation types are the empty roots storage.graphql extends. A request that does not fit
the schema is answered 400 with the errors (as apollo-server does) and kept in `schema_errors`.

The resolvers copy server/graph/resolvers/storage.js: `targets` sorted by title then key, config
entries sorted by key as JSON text `{...prop definition, value}`, sensitive values that are set
shown as "********"; `updateTargets` parses each entry's `{"v": ...}`, keeps the stored value where
"********" comes back and REPLACES the target's whole config. Targets left out of the list are reset
(disabled, empty config): the strictest reading of "the list you send is the new list", so a client
that forgets to send one loses it here. A caller without the key is the guest: `@auth` throws
"Forbidden" (HTTP 200 with `errors`). Knobs: `fail_next` (5xx), `delay_next` (timeouts),
`http_401` (a proxy in front refusing), `refuse_updates` (responseResult.succeeded false),
`ignore_updates` (answers success, stores nothing), `resolver_error` (a resolver throws: 200 with
`errors`), `setup_wizard` (a wiki not set up yet: every POST but /finalize is a 404, server/setup.js).
"""

from __future__ import annotations

import copy
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from graphql import GraphQLError, build_schema, graphql_sync, parse, validate

from tests.components.providers.fake_api import InjectedFaults, serving_fake

VALID_KEY = "eyJhbGciOiJSUzI1NiJ9.fake-wikijs-api-key.0123456789abcdef"
MASK = "********"

SCHEMA_SDL = '''
directive @auth(requires: [String]) on QUERY | FIELD_DEFINITION | ARGUMENT_DEFINITION

type Query
type Mutation

type KeyValuePair {
  key: String!
  value: String!
}
input KeyValuePairInput {
  key: String!
  value: String!
}

type DefaultResponse {
  responseResult: ResponseStatus
}

type ResponseStatus {
  succeeded: Boolean!
  errorCode: Int!
  slug: String!
  message: String
}

# ===============================================
# STORAGE
# ===============================================

extend type Query {
  storage: StorageQuery
}

extend type Mutation {
  storage: StorageMutation
}

type StorageQuery {
  targets: [StorageTarget] @auth(requires: ["manage:system"])
  status: [StorageStatus] @auth(requires: ["manage:system"])
}

type StorageMutation {
  updateTargets(
    targets: [StorageTargetInput]!
  ): DefaultResponse @auth(requires: ["manage:system"])

  executeAction(
    targetKey: String!
    handler: String!
  ): DefaultResponse @auth(requires: ["manage:system"])
}

type StorageTarget {
  isAvailable: Boolean!
  isEnabled: Boolean!
  key: String!
  title: String!
  description: String
  logo: String
  website: String
  supportedModes: [String]
  mode: String
  hasSchedule: Boolean!
  syncInterval: String
  syncIntervalDefault: String
  config: [KeyValuePair]
  actions: [StorageTargetAction]
}

input StorageTargetInput {
  isEnabled: Boolean!
  key: String!
  mode: String!
  syncInterval: String
  config: [KeyValuePairInput]
}

type StorageStatus {
  key: String!
  title: String!
  status: String!
  message: String!
  lastAttempt: String!
}

type StorageTargetAction {
  handler: String!
  label: String!
  hint: String!
}
'''
SCHEMA = build_schema(SCHEMA_SDL)


def _prop(type_: str, title: str, default: Any = "", sensitive: bool = False) -> dict:
    return {"type": type_, "title": title, "default": default, "hint": "", "sensitive": sensitive}


# The module definitions (server/modules/storage/*/definition.yml, 2.5): props, modes, schedule.
MODULES: dict[str, dict] = {
    "disk": {"title": "Local File System", "supportedModes": ["push"], "schedule": False, "props": {
        "path": _prop("String", "Path"), "createDailyBackups": _prop("Boolean", "Create Daily Backups", False)}},
    "git": {"title": "Git", "supportedModes": ["sync", "push", "pull"], "schedule": "PT5M", "props": {
        "authType": _prop("String", "Authentication Type", "ssh"), "repoUrl": _prop("String", "Repository URI"),
        "branch": _prop("String", "Branch", "master"),
        "sshPrivateKeyMode": _prop("String", "SSH Private Key Mode", "path"),
        "sshPrivateKeyPath": _prop("String", "A - SSH Private Key Path"),
        "sshPrivateKeyContent": _prop("String", "B - SSH Private Key Contents", sensitive=True),
        "verifySSL": _prop("Boolean", "Verify SSL Certificate", True), "basicUsername": _prop("String", "Username"),
        "basicPassword": _prop("String", "Password / PAT", sensitive=True),
        "defaultEmail": _prop("String", "Default Author Email", "name@company.com"),
        "defaultName": _prop("String", "Default Author Name", "John Smith"),
        "localRepoPath": _prop("String", "Local Repository Path", "./data/repo"),
        "alwaysNamespace": _prop("Boolean", "Always Locale Namespace", False),
        "gitBinaryPath": _prop("String", "Git Binary Path")}},
    "s3": {"title": "Amazon S3", "supportedModes": ["push"], "schedule": False, "props": {
        "region": _prop("String", "Region"), "bucket": _prop("String", "Unique bucket name"),
        "accessKeyId": _prop("String", "Access Key ID"),
        "secretAccessKey": _prop("String", "Secret Access Key", sensitive=True)}},
}


def _defaults(key: str) -> dict:
    return {name: prop["default"] for name, prop in MODULES[key]["props"].items()}


@dataclass
class Recorded:
    operation: str
    variables: dict


@dataclass
class FakeWikiJs(InjectedFaults):
    key: str = VALID_KEY
    base_url: str = ""
    # key -> {"isEnabled", "mode", "syncInterval", "config"}: the wiki's `storage` table.
    targets: dict[str, dict] = field(default_factory=lambda: {
        key: {"isEnabled": False, "mode": MODULES[key]["supportedModes"][0], "syncInterval": None,
              "config": _defaults(key)} for key in MODULES})
    calls: list[Recorded] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    http_401: bool = False
    refuse_updates: bool = False
    ignore_updates: bool = False
    resolver_error: str | None = None
    setup_wizard: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mutations(self) -> list[Recorded]:
        return [call for call in self.calls if call.operation == "mutation"]

    def enable_backup(self) -> None:
        """What an admin does by hand: an S3 backup with its secret, and a local disk copy."""
        self.targets["s3"] = {"isEnabled": True, "mode": "push", "syncInterval": "P0D", "config": {
            "region": "eu-west-1", "bucket": "wiki-backup", "accessKeyId": "AKIAFAKE",
            "secretAccessKey": "s3-secret-value"}}
        self.targets["disk"] = {"isEnabled": True, "mode": "push", "syncInterval": "P0D",
                                "config": {"path": "/backup", "createDailyBackups": True}}

    # HTTP ---------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        failure = self.next_fault()
        if failure:
            return failure, {"message": "Service Unavailable"}
        if self.http_401:
            return 401, {"message": "Unauthorized"}
        if method != "POST" or path != "/graphql" or self.setup_wizard:
            return 404, {"message": "Not Found"}
        try:
            body = json.loads(raw or b"{}")
            document = parse(body["query"])
        except (ValueError, KeyError, GraphQLError) as error:
            return 400, {"errors": [{"message": f"bad GraphQL request: {error}"}]}
        problems = [e.message for e in validate(SCHEMA, document)]
        if problems:
            self.schema_errors.extend(problems)
            return 400, {"errors": [{"message": m} for m in problems]}
        operation = document.definitions[0].operation.value
        variables = body.get("variables") or {}
        self.calls.append(Recorded(operation, copy.deepcopy(variables)))
        admin = headers.get("authorization") == f"Bearer {self.key}"
        with self._lock:
            result = graphql_sync(SCHEMA, body["query"], root_value=_Root(self, admin), variable_values=variables)
        if result.errors and result.data is None:
            # Variables that do not fit the input types: the request does not fit the schema.
            self.schema_errors.extend(e.message for e in result.errors)
            return 400, {"errors": [e.formatted for e in result.errors]}
        reply: dict[str, Any] = {"data": result.data}
        if result.errors:
            reply["errors"] = [e.formatted for e in result.errors]
        return 200, reply

    # Resolvers (server/graph/resolvers/storage.js) ----------------------------------------------

    def shown_targets(self) -> list[dict]:
        shown = []
        for key, row in self.targets.items():
            module = MODULES[key]
            config = []
            for name, value in row["config"].items():
                prop = module["props"].get(name)
                if prop is None:
                    continue  # stored but not in the definition: the resolver leaves it out
                masked = MASK if prop["sensitive"] and isinstance(value, str) and value else value
                config.append({"key": name, "value": json.dumps({**prop, "value": masked})})
            shown.append({
                "isAvailable": True, "isEnabled": row["isEnabled"], "key": key, "title": module["title"],
                "supportedModes": module["supportedModes"], "mode": row["mode"],
                "hasSchedule": module["schedule"] is not False,
                "syncInterval": row["syncInterval"] or module["schedule"] or "P0D",
                "syncIntervalDefault": module["schedule"] or None, "config": sorted(config, key=lambda e: e["key"]),
            })
        return sorted(shown, key=lambda t: (t["title"], t["key"]))

    def update_targets(self, targets: list[dict]) -> dict:
        if self.refuse_updates:
            return {"responseResult": {"succeeded": False, "errorCode": 1, "slug": "Error",
                                       "message": "Git repository is not reachable: authentication failed"}}
        try:
            rows = {}
            for target in targets:
                current = self.targets.get(target["key"])
                if current is None:
                    continue
                config = {}
                for entry in target.get("config") or []:
                    value = json.loads(entry["value"]).get("v")
                    if value == MASK:
                        value = current["config"].get(entry["key"], "")
                    config[entry["key"]] = value
                rows[target["key"]] = {"isEnabled": target["isEnabled"], "mode": target["mode"],
                                       "syncInterval": target.get("syncInterval"), "config": config}
        except (ValueError, AttributeError) as error:
            return {"responseResult": {"succeeded": False, "errorCode": 1, "slug": type(error).__name__,
                                       "message": str(error)}}
        if not self.ignore_updates:
            for key in self.targets:
                self.targets[key] = rows.get(key) or {"isEnabled": False, "mode": self.targets[key]["mode"],
                                                      "syncInterval": None, "config": {}}
        return {"responseResult": {"succeeded": True, "errorCode": 0, "slug": "ok",
                                   "message": "Storage targets updated successfully"}}


class _Root:
    """`query`/`mutation` root: graphql-core calls `storage(info)`; `@auth` is applied per field."""

    def __init__(self, fake: FakeWikiJs, admin: bool):
        self.fake, self.admin = fake, admin

    def storage(self, info) -> _Storage:
        return _Storage(self.fake, self.admin)


class _Storage:
    def __init__(self, fake: FakeWikiJs, admin: bool):
        self.fake, self.admin = fake, admin

    def _auth(self) -> None:
        # A missing or wrong key makes the caller the guest, who lacks manage:system.
        if not self.admin:
            raise GraphQLError("Forbidden")
        if self.fake.resolver_error:
            raise GraphQLError(self.fake.resolver_error)

    def targets(self, info) -> list[dict]:
        self._auth()
        return self.fake.shown_targets()

    def updateTargets(self, info, targets: list[dict]) -> dict:
        self._auth()
        return self.fake.update_targets(targets)


@contextmanager
def running_fake_wikijs() -> Iterator[FakeWikiJs]:
    """A fake wiki on a free 127.0.0.1 port, stopped on the way out even when the test fails."""
    with serving_fake(FakeWikiJs()) as fake:
        yield fake
