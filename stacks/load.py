"""From the raw `ceres:*` config of a stack to a validated StackSpec, or every problem at once.

Each problem names the key path as the user writes it (`ceres:services.gitea.image`), the
value received and what is allowed. Secret values never enter this module's messages.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from urllib.parse import urlsplit
from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from components.catalog import EDGES_BY_ID, EDGES_REQUIRED_BY, SERVICE_REQUIRES
from components.score import why_not_wanted
from stacks.spec import SECRET_SETTINGS, StackSpec
from stacks.tiers import TIERS, effective_config

NAMESPACE = "ceres"
_URL_PASSWORD = re.compile(r"(://[^:/@]+):[^@]*@")


@dataclass(frozen=True)
class Problem:
    path: str
    received: Any
    allowed: str

    def __str__(self) -> str:
        received = "nothing" if self.received is _MISSING else _show(self.received)
        return f"{NAMESPACE}:{self.path}: received {received}; {self.allowed}"


class ConfigError(Exception):
    """Raised before any resource is registered; its text is the list of problems, one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_MISSING = object()


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    return text if len(text) <= 120 else text[:117] + "..."


def _parse_value(text: Any) -> Any:
    """Pulumi hands config over as strings; objects, lists, numbers and booleans as JSON text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def load_spec(stack: str, raw_config: Mapping[str, Any], secret_keys: set[str] = frozenset()) -> StackSpec:
    """Validate a stack's `ceres:*` config (`{"ceres:domain": "...", ...}`) or raise ConfigError."""
    settings, problems = _read_settings(stack, raw_config, secret_keys)
    if problems:
        raise ConfigError(problems)
    tier = settings.pop("tier")
    merged = effective_config(tier, settings)
    try:
        spec = StackSpec.model_validate(merged)
    except ValidationError as error:
        errors = _most_specific(error.errors())
        raise ConfigError([_problem_from(err, merged) for err in errors]) from None
    problems = check_spec(spec, raw_config, secret_keys)
    if problems:
        raise ConfigError(problems)
    return spec


def _read_settings(stack: str, raw_config: Mapping[str, Any], secret_keys: set[str]) -> tuple[dict[str, Any], list[Problem]]:
    allowed = sorted(set(StackSpec.model_fields) | set(SECRET_SETTINGS))
    settings: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, text in raw_config.items():
        namespace, _, name = key.partition(":")
        if namespace != NAMESPACE:
            continue
        if name in SECRET_SETTINGS:
            if key not in secret_keys:
                problems.append(Problem(name, "a plain-text value", f"{SECRET_SETTINGS[name]} must be a secret: pulumi config set --secret {name} ..."))
            continue
        if name not in StackSpec.model_fields:
            problems.append(Problem(name, name, f"unknown setting; {_allowed(name, allowed)}"))
            continue
        settings[name] = _parse_value(text)
    tier = settings.get("tier", stack if stack in TIERS else _MISSING)
    if tier not in TIERS:
        problems.append(Problem("tier", tier, f"allowed: {', '.join(TIERS)} (set ceres:tier, or name the stack after its tier)"))
    settings["tier"] = tier
    return settings, problems


def _allowed(received: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(received, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"allowed: {', '.join(allowed)}{hint}"


def _most_specific(errors: list[Any]) -> list[Any]:
    """Drop an error on a container when an item inside it already failed (pydantic reports both)."""
    locs = [tuple(err["loc"]) for err in errors]
    return [
        err for err, loc in zip(errors, locs)
        if not any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)
    ]


def dotted(path: tuple[Any, ...]) -> str:
    """`("hosts", 0, "url")` -> `hosts[0].url`, as a user reads a key path."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


# What to do about a setting that has no default in the stack's tier.
MISSING_HINTS: dict[str, str] = {
    "tls.email": "ACME needs the e-mail the CA writes to about the certificates, e.g. ops@example.com",
    "backup.repository": "give the restic repository: a path on the apps host, or s3:https://<endpoint>/<bucket>/<prefix> (keys: the secret settings backup_s3_access_key and backup_s3_secret_key)",
    "hosts": "list the Docker hosts: [{name, url: ssh://user@host, roles: [apps|ha]}, ...]",
    "domain": "give the base domain the apps are served under, e.g. ceres.example.com",
}


def _problem_from(error: Mapping[str, Any], data: dict[str, Any]) -> Problem:
    path, model = _display_path(error["loc"])
    key = dotted(path)
    received = _lookup(data, path)
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = sorted(model.model_fields) if model else []
        what = "unknown service" if path[:1] == ("services",) and len(path) == 2 else "unknown setting"
        return Problem(key, path[-1], f"{what}; {_allowed(str(path[-1]), allowed)}")
    if kind == "missing":
        return Problem(key, _MISSING, f"required: {MISSING_HINTS.get(key, 'this tier has no default for it')}")
    message = error["msg"].removeprefix("Value error, ")
    return Problem(key, received, message)


def _display_path(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], type[BaseModel] | None]:
    """Drop the union tags pydantic puts in a location (`tls.acme.email` is `tls.email` to the user).

    Returns the path and the model that holds its last part (to list what is allowed there).
    """
    path: list[Any] = []
    node: Any = StackSpec
    holder: type[BaseModel] | None = None
    for part in loc:
        if isinstance(node, dict):  # members of a tagged union, by tag
            node = node.get(part)
            continue
        node = _unwrap(node)
        path.append(part)
        if isinstance(node, type) and issubclass(node, BaseModel):
            holder = node
            field = node.model_fields.get(part)
            node = _tagged_members(field) or (field.annotation if field else None)
        else:
            origin, args = typing.get_origin(node), typing.get_args(node)
            node = args[0] if origin is tuple else args[1] if origin is dict else None
    return tuple(path), holder


def _unwrap(annotation: Any) -> Any:
    """Optional[X] -> X."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _tagged_members(field: Any) -> dict[str, type[BaseModel]] | None:
    if field is None or not isinstance(field.discriminator, str):
        return None
    return {
        tag: member
        for member in typing.get_args(field.annotation)
        for tag in typing.get_args(member.model_fields[field.discriminator].annotation)
    }


def _lookup(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return _MISSING
    return data


def check_spec(spec: StackSpec, raw_config: Mapping[str, Any] = {}, secret_keys: set[str] = frozenset()) -> list[Problem]:
    """Rules across settings, once each setting is valid on its own."""
    return [
        *_check_hosts(spec),
        *_check_ha(spec),
        *_check_services(spec),
        *_check_integrations(spec),
        *_check_sso(spec),
        *_check_secrets(spec, raw_config),
        *_check_backup(spec),
    ]


def _check_hosts(spec: StackSpec) -> list[Problem]:
    problems = []
    seen: dict[str, int] = {}
    for index, host in enumerate(spec.hosts):
        if host.name in seen:
            problems.append(Problem(f"hosts[{index}].name", host.name, f"host names must be unique; hosts[{seen[host.name]}] has it already"))
        seen.setdefault(host.name, index)
    urls: dict[str, int] = {}
    for index, host in enumerate(spec.hosts):
        if host.url in urls:
            problems.append(Problem(f"hosts[{index}].url", host.url, f"each host needs its own Docker endpoint; hosts[{urls[host.url]}] uses it already"))
        urls.setdefault(host.url, index)
    app_hosts = [host.name for host in spec.hosts_with("apps")]
    if len(app_hosts) != 1:
        problems.append(Problem("hosts", [h.name for h in spec.hosts], f"exactly one host must have the role 'apps' (found {len(app_hosts)}: {', '.join(app_hosts) or 'none'})"))
    return problems


def _check_ha(spec: StackSpec) -> list[Problem]:
    ha = spec.ha
    if not ha.enabled:
        return []
    problems = []
    ha_hosts = [host.name for host in spec.hosts_with("ha")]
    for setting, members, minimum in (
        ("etcd_members", ha.etcd_members, 3),
        ("postgres_members", ha.postgres_members, 3),
        ("redis_sentinels", ha.redis_sentinels, 3),
    ):
        if members < minimum:
            problems.append(Problem(f"ha.{setting}", members, f"HA needs at least {minimum} so a majority survives one host failing"))
        elif members > len(ha_hosts):
            problems.append(Problem(f"ha.{setting}", members, f"members go on different hosts, but only {len(ha_hosts)} host(s) have the role 'ha' ({', '.join(ha_hosts) or 'none'}); add hosts or lower it"))
    if ha.etcd_members >= 3 and ha.etcd_members % 2 == 0:
        problems.append(Problem("ha.etcd_members", ha.etcd_members, "use an odd number: an even member adds no failure tolerance to the etcd quorum"))
    if ha.virtual_ip is None:
        problems.append(Problem("ha.virtual_ip", _MISSING, "HA needs the IPv4 address Keepalived moves between the HAProxy hosts"))
    addresses: dict[str, str] = {}
    for index, host in enumerate(spec.hosts):
        if host.address is None and ("ha" in host.roles or "apps" in host.roles):
            problems.append(Problem(f"hosts[{index}].address", _MISSING, "the HA tier's members reach each other host to host: give this host's private IPv4 address"))
        elif host.address is not None:
            if host.address in addresses:
                problems.append(Problem(f"hosts[{index}].address", host.address, f"{addresses[host.address]} has this address already"))
            if host.address == ha.virtual_ip:
                problems.append(Problem(f"hosts[{index}].address", host.address, "it is ha.virtual_ip: the virtual IP must be free, only Keepalived holds it"))
            addresses.setdefault(host.address, host.name)
    for service in ("postgres", "redis"):
        if not spec.enabled(service):
            problems.append(Problem(f"services.{service}.enabled", False, "the HA tier replicates it: enable it or set ha.enabled=false"))
    if spec.integrations.get("ha-postgres") is False and spec.integrations.get("ha-proxy-vip") is not False:
        problems.append(Problem("integrations.ha-postgres", False, "the HAProxy pair and its virtual IP front the PostgreSQL "
                                "cluster: switch ha-proxy-vip off too (the stack then runs single PostgreSQL and Redis servers)"))
    return problems


def _check_services(spec: StackSpec) -> list[Problem]:
    problems = []
    for service, needs in SERVICE_REQUIRES.items():
        if not spec.enabled(service):
            continue
        for needed in needs:
            if not spec.enabled(needed):
                problems.append(Problem(f"services.{needed}.enabled", False, f"services.{service} cannot run without {needed}: enable {needed} or disable {service}"))
    return problems


def _check_integrations(spec: StackSpec) -> list[Problem]:
    problems = []
    for edge_id, wanted in spec.integrations.items():
        path = f"integrations.{edge_id}"
        edge = EDGES_BY_ID.get(edge_id)
        if edge is None:
            close = difflib.get_close_matches(edge_id, list(EDGES_BY_ID), n=3)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            problems.append(Problem(path, edge_id, f"unknown edge; {hint}`ceres matrix` lists every edge id"))
            continue
        if not wanted:
            needed_by = [s for s, needed in EDGES_REQUIRED_BY.items() if edge_id in needed and spec.enabled(s)]
            if needed_by:
                problems.append(Problem(path, False, f"services.{needed_by[0]} cannot run without it: remove the setting or disable {needed_by[0]}"))
            continue
        reason = edge.not_applicable(spec) or why_not_wanted(edge, spec)
        if reason:
            problems.append(Problem(path, True, f"this edge cannot be built here: {reason}; fix that or remove the setting"))
    return problems


def _sso_edges() -> dict[str, str]:
    """App -> its login edge id, for every app that signs in through Keycloak."""
    return {e.source: e.id for e in EDGES_BY_ID.values() if e.kind == "oidc_client"}


def _check_sso(spec: StackSpec) -> list[Problem]:
    problems = []
    logins = _sso_edges()
    if not spec.enabled("keycloak"):
        signing_in = [
            app for app, edge_id in logins.items()
            if spec.enabled(app) and spec.integrations.get(edge_id) is not False
        ]
        if signing_in:
            switches = ", ".join(f"integrations.{logins[app]}=false" for app in signing_in)
            problems.append(Problem(
                "services.keycloak.enabled", False,
                f"{', '.join(signing_in)} sign in through Keycloak: enable keycloak, or turn their SSO off ({switches})",
            ))
    for app, uris in spec.sso.extra_redirect_uris.items():
        if app not in logins:
            problems.append(Problem(f"sso.extra_redirect_uris.{app}", app, f"not an app that signs in through Keycloak; {_allowed(app, sorted(logins))}"))
            continue
        for index, uri in enumerate(uris):
            host = urlsplit(uri).hostname or ""
            if host != spec.domain and not host.endswith(f".{spec.domain}"):
                problems.append(Problem(
                    f"sso.extra_redirect_uris.{app}[{index}]", uri,
                    f"redirect host {host!r} is outside the stack's domain {spec.domain!r}: Keycloak would send sign-ins there",
                ))
    return problems


S3_SECRETS = ("backup_s3_access_key", "backup_s3_secret_key")


def _check_secrets(spec: StackSpec, raw_config: Mapping[str, Any]) -> list[Problem]:
    problems = []
    if spec.smtp and spec.smtp.username and f"{NAMESPACE}:smtp_password" not in raw_config:
        problems.append(Problem("smtp_password", _MISSING, "smtp.username is set, so the relay password is needed: pulumi config set --secret smtp_password ..."))
    archive = EDGES_BY_ID["backup-pitr"]
    archiving = spec.backup.object_store is not None and not (archive.not_applicable(spec) or why_not_wanted(archive, spec))
    uses_s3 = [why for why, used in (("point-in-time recovery archives into backup.object_store", archiving),
                                     ("backup.repository is an s3: repository", spec.backup.repository.startswith("s3:")))
               if used]
    if uses_s3:
        for name in S3_SECRETS:
            if f"{NAMESPACE}:{name}" not in raw_config:
                problems.append(Problem(name, _MISSING, f"{' and '.join(uses_s3)}, so the bucket's keys are needed: pulumi config set --secret {name} ..."))
    return problems


def _check_backup(spec: StackSpec) -> list[Problem]:
    """The restic repository and the PostgreSQL archive may share a bucket, never a prefix: each
    expires what it does not recognise as its own."""
    store, repository = spec.backup.object_store, spec.backup.repository
    if store is None or not repository.startswith("s3:"):
        return []
    location = urlsplit(repository[len("s3:"):])
    bucket, _, prefix = location.path.lstrip("/").partition("/")
    archive = spec.backup.point_in_time.path.strip("/")
    prefix = prefix.strip("/")
    # Bucket names are global on AWS and the same store answers under several host names: the
    # bucket and the prefixes decide.
    if bucket == store.bucket and (
            not prefix or prefix == archive or prefix.startswith(f"{archive}/") or archive.startswith(f"{prefix}/")):
        return [Problem("backup.repository", repository,
                        f"overlaps the PostgreSQL archive at {store.bucket}/{archive} (backup.point_in_time.path):"
                        f" give restic its own prefix, e.g. s3:https://{store.endpoint}/{store.bucket}/restic")]
    return []

