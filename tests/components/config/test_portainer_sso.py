"""Portainer's sign-in step, run for real: the rendered Python against a stub Portainer API.

No Portainer runs here. The stub answers like Portainer CE 2.33 (api/http/handler/auth,
handler/settings): POST /api/auth gives a JWT for the initial admin (the only password login CE
keeps once OAuth is on); GET /api/settings never shows OAuthSettings.ClientSecret; PUT
/api/settings replaces OAuthSettings whole, keeps the stored secret when the payload's is empty,
and answers with the full settings, secret included. It serves plain HTTP, or HTTPS with a
self-signed certificate (the dev case: Caddy's internal CA) made by `openssl` (Debian package
`openssl`), on 127.0.0.1 and a free port, stopped by the fixture.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from components.config import portainer as config
from tests.components.config.stubs import JsonApiHandler, require
from tests.support import serving

TIMEOUT = 60
PASSWORD = "adm1n-'pass\"word $HOME"
SECRET = "client-secret-0123456789abcdefABCDEF"
ROTATED = "rotated-secret-ZYXWVUTSRQPONMLKJIHG"
OAUTH = config.OAuthSettings(
    client_id="portainer",
    authorization_uri="https://keycloak.ceres.example.com/realms/ceres/protocol/openid-connect/auth",
    access_token_uri="http://keycloak:8080/realms/ceres/protocol/openid-connect/token",
    resource_uri="http://keycloak:8080/realms/ceres/protocol/openid-connect/userinfo",
    redirect_uri="https://portainer.ceres.example.com/",
    logout_uri=config.logout_uri(
        "https://keycloak.ceres.example.com/realms/ceres/protocol/openid-connect/logout",
        "portainer", "https://portainer.ceres.example.com/"),
)


@dataclass
class PortainerState:
    password: str = PASSWORD
    settings: dict = field(default_factory=lambda: {
        "AuthenticationMethod": 1, "LogoURL": "", "OAuthSettings": {"ClientID": "", "ClientSecret": ""}})
    tokens: set = field(default_factory=set)
    calls: list = field(default_factory=list)
    failures_left: int = 0


def handler_for(state: PortainerState):
    class Handler(JsonApiHandler):
        def authorised(self) -> bool:
            return self.bearer() in state.tokens

        def handle_any(self, method: str) -> None:
            payload = self.json_body() if method in ("POST", "PUT") else None
            state.calls.append((method, self.path, payload))
            if state.failures_left:
                state.failures_left -= 1
                return self.answer(502, {"message": "upstream not ready"})
            if (method, self.path) == ("POST", "/api/auth"):
                if payload.get("username") == "admin" and payload.get("password") == state.password:
                    token = f"jwt-{len(state.tokens) + 1}"
                    state.tokens.add(token)
                    return self.answer(200, {"jwt": token})
                return self.answer(422, {"message": "Invalid credentials"})
            if self.path != "/api/settings":
                return self.answer(404, {"message": "not found"})
            if not self.authorised():
                return self.answer(401, {"message": "Unauthorized"})
            if method == "GET":
                shown = json.loads(json.dumps(state.settings))
                shown["OAuthSettings"].pop("ClientSecret", None)  # hideFields
                return self.answer(200, shown)
            if method == "PUT":
                if payload.get("AuthenticationMethod") not in (1, 2, 3):
                    return self.answer(400, {"message": "Invalid authentication method value"})
                state.settings["AuthenticationMethod"] = payload["AuthenticationMethod"]
                if payload.get("OAuthSettings") is not None:
                    secret = payload["OAuthSettings"].get("ClientSecret") or state.settings["OAuthSettings"].get("ClientSecret")
                    state.settings["OAuthSettings"] = {**payload["OAuthSettings"], "ClientSecret": secret}
                return self.answer(200, state.settings)
            return self.answer(405, {"message": "method not allowed"})

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

    return Handler


@dataclass
class Stub:
    url: str
    state: PortainerState


@contextmanager
def running_portainer(tls_dir: Path | None = None) -> Iterator[Stub]:
    """A stub Portainer on a free 127.0.0.1 port, over HTTPS with the certificate in `tls_dir` if
    given; stopped on the way out."""
    state = PortainerState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    scheme = "http"
    if tls_dir is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    with serving(server):
        yield Stub(f"{scheme}://127.0.0.1:{server.server_address[1]}", state)


@pytest.fixture
def portainer() -> Iterator[Stub]:
    with running_portainer() as stub:
        yield stub


@pytest.fixture
def portainer_tls(tmp_path: Path) -> Iterator[Stub]:
    require("openssl", "run `apt-get install -y openssl` (it makes the stub's self-signed certificate)")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True, timeout=TIMEOUT,
    )
    with running_portainer(tmp_path) as stub:
        yield stub


def step(url: str, **overrides) -> config.SsoStep:
    return config.SsoStep(**{"url": url, "admin_username": "admin", "oauth": OAUTH, "verify_tls": False,
                             "attempts": 3, "retry_delay": 0.05, **overrides})


def run_step(sso_step: config.SsoStep, *, secret: str | None = SECRET, password: str | None = PASSWORD,
             previous_stdout: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"}
    if secret is not None:
        env[config.CLIENT_SECRET_VARIABLE] = secret
    if password is not None:
        env[config.ADMIN_PASSWORD_VARIABLE] = password
    if previous_stdout is not None:
        # What pulumi-command gives a re-run of `create` on update (add_previous_output_in_env).
        env["PULUMI_COMMAND_STDOUT"] = previous_stdout
    # As the step runs it: `python3 -` with the script on stdin.
    return subprocess.run([sys.executable, "-"], input=config.sso_script(sso_step), env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"step failed ({result.returncode}):\n{result.stderr}"
    return result


def puts(stub: Stub) -> list[dict]:
    return [body for method, path, body in stub.state.calls if method == "PUT"]


def test_first_run_turns_on_oauth_against_the_realm(portainer: Stub):
    result = ok(run_step(step(portainer.url)))
    settings = portainer.state.settings
    assert settings["AuthenticationMethod"] == 3
    assert settings["OAuthSettings"] == {**OAUTH.as_portainer(), "ClientSecret": SECRET}
    assert settings["OAuthSettings"]["RedirectURI"] == "https://portainer.ceres.example.com/"
    assert len(puts(portainer)) == 1
    assert result.stdout.strip().splitlines()[-1].startswith("client-secret sha256:")


def test_a_second_run_with_the_same_inputs_changes_nothing(portainer: Stub):
    first = ok(run_step(step(portainer.url)))
    second = ok(run_step(step(portainer.url), previous_stdout=first.stdout))
    assert len(puts(portainer)) == 1, "nothing differs, so nothing is written"
    assert "unchanged" in second.stderr
    assert second.stdout == first.stdout


def test_a_rotated_secret_is_sent_again(portainer: Stub):
    first = ok(run_step(step(portainer.url)))
    rotated = ok(run_step(step(portainer.url), secret=ROTATED, previous_stdout=first.stdout))
    assert portainer.state.settings["OAuthSettings"]["ClientSecret"] == ROTATED
    assert len(puts(portainer)) == 2 and "ClientSecret" in rotated.stderr
    assert rotated.stdout != first.stdout
    ok(run_step(step(portainer.url), secret=ROTATED, previous_stdout=rotated.stdout))
    assert len(puts(portainer)) == 2


def test_settings_changed_by_hand_are_put_back(portainer: Stub):
    first = ok(run_step(step(portainer.url)))
    portainer.state.settings["OAuthSettings"]["RedirectURI"] = "https://elsewhere.example.com/"
    result = ok(run_step(step(portainer.url), previous_stdout=first.stdout))
    assert portainer.state.settings["OAuthSettings"]["RedirectURI"] == "https://portainer.ceres.example.com/"
    assert "RedirectURI" in result.stderr


def test_without_the_previous_fingerprint_the_secret_is_sent_once_more(portainer: Stub):
    # A replaced step (or lost state) cannot know what Portainer holds: Portainer never shows it.
    ok(run_step(step(portainer.url)))
    ok(run_step(step(portainer.url)))
    assert len(puts(portainer)) == 2
    assert portainer.state.settings["OAuthSettings"]["ClientSecret"] == SECRET


def test_secrets_stay_in_the_environment_and_out_of_every_output(portainer: Stub):
    script = config.sso_script(step(portainer.url))
    assert SECRET not in script and PASSWORD not in script
    first = ok(run_step(step(portainer.url)))
    rotated = ok(run_step(step(portainer.url), secret=ROTATED, previous_stdout=first.stdout))
    for result in (first, rotated):
        for text in (result.stdout, result.stderr):
            assert SECRET not in text and ROTATED not in text and PASSWORD not in text
    # The secret travels only in the PUT body, to Portainer.
    sent = [json.dumps(body) for _, _, body in portainer.state.calls if body]
    assert [SECRET in s for s in sent].count(True) == 1


def test_admin_mapping_is_not_touched_because_ce_has_none(portainer: Stub):
    ok(run_step(step(portainer.url)))
    (body,) = puts(portainer)
    assert set(body) == {"AuthenticationMethod", "OAuthSettings"}
    oauth = body["OAuthSettings"]
    # Business Edition's TeamMemberships / AdminAutoPopulate do not exist in CE: people who sign in
    # are auto-created standard users in no team.
    assert not {"TeamMemberships", "OAuthClaimMappings", "AdminAutoPopulate"} & set(oauth)
    assert oauth["OAuthAutoCreateUsers"] is True and oauth["DefaultTeamID"] == 0
    assert {path for _, path, _ in portainer.state.calls} == {"/api/auth", "/api/settings"}, "no user is promoted"


@pytest.mark.parametrize("missing", ["secret", "password"])
def test_without_a_secret_it_stops_before_calling_portainer(portainer: Stub, missing: str):
    result = run_step(step(portainer.url), **{missing: None})
    assert result.returncode != 0 and "is not set" in result.stderr
    assert portainer.state.calls == []


def test_a_wrong_admin_password_fails_clearly(portainer: Stub):
    result = run_step(step(portainer.url), password="wrong")
    assert result.returncode != 0
    assert "POST /api/auth answered 422" in result.stderr
    assert not puts(portainer)


def test_it_waits_for_portainer_behind_the_proxy(portainer: Stub):
    portainer.state.failures_left = 2
    ok(run_step(step(portainer.url)))
    assert portainer.state.settings["AuthenticationMethod"] == 3


def test_dev_accepts_the_internal_ca_and_prod_verifies_it(portainer_tls: Stub):
    ok(run_step(step(portainer_tls.url, verify_tls=False)))
    assert portainer_tls.state.settings["AuthenticationMethod"] == 3
    verified = run_step(step(portainer_tls.url, verify_tls=True))
    assert verified.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in verified.stderr


def test_logout_goes_back_to_portainer_through_keycloak():
    assert OAUTH.logout_uri == (
        "https://keycloak.ceres.example.com/realms/ceres/protocol/openid-connect/logout"
        "?client_id=portainer&post_logout_redirect_uri=https%3A%2F%2Fportainer.ceres.example.com%2F"
    )


def test_rendering_refuses_a_url_that_is_not_http():
    with pytest.raises(ValueError):
        step("ftp://portainer.example.com")
