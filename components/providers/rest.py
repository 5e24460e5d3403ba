"""What every CERES dynamic provider shares: one bounded, retrying, redacting HTTP call.

The providers run inside Pulumi's plugin host, pickled with dill: nothing here holds a client
or a connection between calls. `Api` is a plain value (URL, token, TLS check) and each call
opens its own `httpx.Client`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import httpx
from pulumi.output import Unknown

# Connection errors and these statuses are worth another try: the app is starting or restarting
# behind Caddy (502), or briefly overloaded. A 500 is not: Wiki.js answers a revoked key with one,
# Gitea a PATCH of a vanished system hook; retrying would only delay the real message.
RETRY_STATUSES = frozenset({502, 503, 504})
REQUEST_TIMEOUT_S = 15.0
TOTAL_TIMEOUT_S = 120.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0


def is_unknown(value: Any) -> bool:
    """A value the engine does not know yet (preview): `check` and `diff` must not judge it.

    The plugin host hands these to a provider as `pulumi.output.Unknown` instances.
    """
    return isinstance(value, Unknown)


class ApiError(Exception):
    """A refused or failed call, worded for the person running `pulumi up`; never holds a token."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Api:
    """One server's REST API as a provider reaches it.

    `auth_header` is (header name, value) with the token in the value; `token_setting` names where
    the token comes from, so an error can say what to fix without showing it.
    """

    base_url: str
    auth_header: tuple[str, str] = field(repr=False)
    verify_tls: bool = True
    token_setting: str = "the provider's token"
    total_timeout_s: float = TOTAL_TIMEOUT_S
    request_timeout_s: float = REQUEST_TIMEOUT_S

    def call(
        self,
        method: str,
        path: str,
        *,
        resource: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> httpx.Response | None:
        """Send one request, retrying connection errors and 5xx until `total_timeout_s`.

        `resource` names what the call is about ("Mattermost channel ceres/alerts") for errors.
        With `missing_ok`, a 404 returns None (a read of something deleted, a delete of something gone).
        """
        deadline = time.monotonic() + self.total_timeout_s
        backoff = FIRST_BACKOFF_S
        attempt = 0
        while True:
            attempt += 1
            problem = self._attempt(method, path, json=json, params=params, headers=headers)
            if isinstance(problem, httpx.Response):
                response = problem
                if response.status_code == 404 and missing_ok:
                    return None
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise self._refusal(method, path, resource, response)
                problem = f"{response.status_code} {self._server_message(response)}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ApiError(
                    f"{resource}: {method} {self.base_url}{path} failed {attempt} times within "
                    f"{self.total_timeout_s:.0f} s; last: {problem}. Is the server up and reachable from "
                    "where `pulumi up` runs? Run `pulumi up` again once it answers."
                )
            sleep(min(backoff, remaining))
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _attempt(self, method: str, path: str, **request: Any) -> httpx.Response | str:
        name, value = self.auth_header
        headers = {name: value, "Accept": "application/json", **(request.pop("headers") or {})}
        try:
            with httpx.Client(base_url=self.base_url, verify=self.verify_tls, timeout=self.request_timeout_s) as client:
                return client.request(method, path, headers=headers, **request)
        except httpx.TransportError as error:
            # The exception text may quote the request; keep only its kind.
            return type(error).__name__

    def _refusal(self, method: str, path: str, resource: str, response: httpx.Response) -> ApiError:
        status = response.status_code
        said = self._server_message(response)
        where = f"{resource}: {method} {self.base_url}{path} answered {status}"
        if status == 401:
            fix = f"the token was refused: check {self.token_setting} (it may have been revoked), then run `pulumi up` again"
        elif status == 403:
            fix = f"the token's account lacks the permission: grant it, or use a token with the right role ({self.token_setting})"
        elif status in (400, 409, 422):
            fix = "the server refused the values: fix them in the stack config and run `pulumi up` again"
        else:
            fix = "see the server's log for the cause"
        return ApiError(f"{where}: {said}; {fix}", status)

    def _server_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        text = ""
        if isinstance(body, dict):
            text = str(body.get("message") or body.get("error") or body.get("detailed_error") or "")
        text = text or response.text[:200] or response.reason_phrase
        return redact(text, self.secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        value = self.auth_header[1]
        token = value.split(" ", 1)[1] if " " in value else value
        return tuple(s for s in (value, token) if s)


class Hidden(str):
    """A credential kept in a resource's outputs (token, hook id): prints as [secret], since outs
    show up in logs and error reports."""

    def __repr__(self) -> str:
        return "'[secret]'"


def http_url_problem(url: str) -> str | None:
    """Why `url` is not an absolute http(s) URL, for a provider's `check`; None when it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    return None


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced, so a server echoing a request cannot leak it."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[secret]")
    return text
