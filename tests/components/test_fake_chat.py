"""The fake Mattermost answers incoming-webhook posts as Mattermost does (see its module docstring)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from tests.components.fake_chat import fake_chat


def post(url: str, body: str, content_type: str = "application/json") -> int | str:
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:
        return "refused"


def test_posts_land_in_the_hook_channel_or_the_named_override() -> None:
    with fake_chat(channels=("alerts",), users=("bob",)) as chat:
        url = chat.hook_url("abc")
        assert url == f"http://127.0.0.1:{chat.port}/hooks/abc"
        assert post(url, json.dumps({"text": "plain"})) == 200
        assert post(url, json.dumps({"text": "hash", "channel": "#alerts"})) == 200
        form = "payload=" + urllib.parse.quote(json.dumps({"attachments": [{"title": "T", "text": "body"}],
                                                           "channel": "alerts"}))
        assert post(url, form, "application/x-www-form-urlencoded") == 200
        assert post(url, json.dumps({"text": "dm", "channel": "@bob"})) == 200
        assert [m.text for m in chat.messages("town-square")] == ["plain"]
        assert [m.content for m in chat.messages("alerts")] == ["hash", "T\nbody"]
        assert chat.wait_for(lambda m: m.text == "dm", timeout=1).channel == "@bob"


def test_refusals_match_mattermost() -> None:
    with fake_chat() as chat:
        url = chat.hook_url("abc")
        locked = chat.hook_url(channel="ops", locked=True)
        assert post(url, json.dumps({"username": "no text"})) == 400
        assert post(url, "{not json") == 400
        assert post(url, json.dumps({"text": "x", "channel": "missing"})) == 404
        assert post(url, json.dumps({"text": "x", "channel": "@nobody"})) == 400
        assert post(f"{chat.base_url}/hooks/unknown", json.dumps({"text": "x"})) == 400
        assert post(f"{chat.base_url}/hooks/not-an-id", json.dumps({"text": "x"})) == 404
        assert post(locked, json.dumps({"text": "x", "channel": "town-square"})) == 403
        assert post(url, json.dumps({"attachments": []})) == 200  # an empty list still counts
        assert [a.status for a in chat.attempts()] == [400, 400, 404, 400, 400, 403, 200]


def test_down_refuses_connections_failing_answers_500_and_up_restores_the_same_url() -> None:
    with fake_chat() as chat:
        url = chat.hook_url("abc")
        chat.down()
        assert post(url, json.dumps({"text": "lost"})) == "refused"
        chat.up()
        with chat.failing(500):
            assert post(url, json.dumps({"text": "lost"})) == 500
        assert post(url, json.dumps({"text": "back"})) == 200
        assert [m.text for m in chat.messages()] == ["back"]
