"""The Mattermost REST API v4 calls the dynamic providers make: one method per call, no Pulumi.

Every method opens its own connection through `rest.Api` (the providers are pickled, so nothing
here may hold a client). Paths and bodies follow shared/specs/mattermost-api.openapi.yaml, except
the two `.../patch` calls (see `patch_team`, `patch_channel`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from components.providers.rest import REQUEST_TIMEOUT_S, TOTAL_TIMEOUT_S, Api, ApiError, Hidden, redact

TOKEN_SETTING = "the Mattermost bot token (bootstrap step mattermost-bot-token)"

# Mattermost's own letters: "O" open team / public channel.
OPEN = "O"


def _segment(value: str) -> str:
    return quote(value, safe="")


class MattermostApi:
    """One Mattermost server as a bot token reaches it."""

    def __init__(self, api_url: str, token: str, verify_tls: bool = True, *,
                 total_timeout_s: float = TOTAL_TIMEOUT_S, request_timeout_s: float = REQUEST_TIMEOUT_S):
        self._api = Api(
            base_url=api_url,
            auth_header=("Authorization", f"Bearer {token}"),
            verify_tls=verify_tls,
            token_setting=TOKEN_SETTING,
            total_timeout_s=total_timeout_s,
            request_timeout_s=request_timeout_s,
        )

    def __repr__(self) -> str:
        return f"MattermostApi({self._api.base_url!r})"

    # Teams

    def get_team_by_name(self, name: str) -> dict[str, Any] | None:
        return self._json("GET", f"/api/v4/teams/name/{_segment(name)}", resource=f"Mattermost team '{name}'", missing_ok=True)

    def create_team(self, name: str, display_name: str) -> dict[str, Any]:
        # Servers since 10.x keep `type` in step with `allow_open_invite` and turn an "O" team
        # without it into "I" (model/team.go syncTypeAndAllowOpenInvite): send both.
        body = {"name": name, "display_name": display_name, "type": OPEN, "allow_open_invite": True}
        return self._json("POST", "/api/v4/teams", resource=f"Mattermost team '{name}'", json=body)

    def patch_team(self, team_id: str, name: str, display_name: str) -> dict[str, Any]:
        """PUT /api/v4/teams/{id}/patch (teams.yaml PatchTeam; not in the shared contract subset yet)."""
        return self._json(
            "PUT", f"/api/v4/teams/{_segment(team_id)}/patch", resource=f"Mattermost team '{name}'",
            json={"display_name": display_name},
        )

    # Channels

    def get_channel_by_name(self, team_id: str, name: str) -> dict[str, Any] | None:
        return self._json(
            "GET", f"/api/v4/teams/{_segment(team_id)}/channels/name/{_segment(name)}",
            resource=self._channel(team_id, name), missing_ok=True,
        )

    def create_channel(self, team_id: str, name: str, display_name: str, purpose: str) -> dict[str, Any]:
        body = {"team_id": team_id, "name": name, "display_name": display_name, "purpose": purpose, "type": OPEN}
        return self._json("POST", "/api/v4/channels", resource=self._channel(team_id, name), json=body)

    def patch_channel(self, channel_id: str, team_id: str, name: str, display_name: str, purpose: str) -> dict[str, Any]:
        """PUT /api/v4/channels/{id}/patch (channels.yaml PatchChannel; not in the shared contract subset yet)."""
        return self._json(
            "PUT", f"/api/v4/channels/{_segment(channel_id)}/patch", resource=self._channel(team_id, name),
            json={"display_name": display_name, "purpose": purpose},
        )

    # Incoming webhooks: the id is the credential of {site}/hooks/{id}, so every error is
    # scrubbed of it (the path in rest.py's messages carries it).

    def get_incoming_hook(self, hook_id: str, display_name: str) -> dict[str, Any] | None:
        return self._hook_call("GET", hook_id, display_name, missing_ok=True)

    def create_incoming_hook(self, hook: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/v4/hooks/incoming", resource=self._hook(hook["display_name"]), json=hook)

    def update_incoming_hook(self, hook_id: str, hook: dict[str, Any]) -> dict[str, Any]:
        # The server wants the id in the body too, equal to the path's.
        return self._hook_call("PUT", hook_id, hook["display_name"], json={"id": hook_id, **hook})

    def delete_incoming_hook(self, hook_id: str, display_name: str) -> bool:
        """False when it was already gone (a 404 is what a delete wants)."""
        return self._hook_call("DELETE", hook_id, display_name, missing_ok=True) is not None

    def _hook_call(self, method: str, hook_id: str, display_name: str, **request: Any) -> dict[str, Any] | None:
        try:
            return self._json(method, f"/api/v4/hooks/incoming/{_segment(hook_id)}", resource=self._hook(display_name), **request)
        except ApiError as error:
            raise ApiError(redact(str(error), [hook_id]), error.status) from None

    # Plumbing

    def _json(self, method: str, path: str, **request: Any) -> dict[str, Any] | None:
        response = self._api.call(method, path, **request)
        if response is None:
            return None
        body = response.json() if response.content else {}
        if not isinstance(body, dict):
            raise ApiError(f"{request['resource']}: {method} {self._api.base_url}{path} answered a {type(body).__name__}, not an object")
        return body

    @staticmethod
    def _channel(team_id: str, name: str) -> str:
        return f"Mattermost channel '{name}' (team {team_id})"

    @staticmethod
    def _hook(display_name: str) -> str:
        return f"Mattermost incoming webhook '{display_name}'"
