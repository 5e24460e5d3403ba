"""Wiki.js 2.5 config: paths in the image, and the bootstrap that replaces the setup wizard.

Pure functions of typed inputs. The bootstrap is a Node script (the image is Node on Alpine)
using only Node's `http` module, wrapped in `sh` so it can be piped into `sh -s` like every other
bootstrap. Tests run it with a real `node` against a stub Wiki.js that serves the 2.5 GraphQL
schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

DATA_DIR = "/wiki/data"
# Declared a VOLUME by the image: mounted by name too, or each container gets a fresh anonymous one.
CONTENT_DIR = "/wiki/data/content"
SQLITE_PATH = f"{DATA_DIR}/wiki.sqlite"
# Read through DB_PASS_FILE (Wiki.js 2.5 server/core/config.js), so the password is not in the env.
DB_PASSWORD_FILE = "/wiki/.db-password"
ADMIN_EMAIL_VARIABLE = "WIKIJS_ADMIN_EMAIL"
ADMIN_PASSWORD_VARIABLE = "WIKIJS_ADMIN_PASSWORD"
API_KEY_NAME = "ceres"

_KEY_NAME = re.compile(r"^[a-z0-9-]{1,64}$")
_DURATION = re.compile(r"^\d+[smhdwy]$")


@dataclass(frozen=True)
class WikiJsBootstrap:
    site_url: str
    port: int
    key_name: str = API_KEY_NAME
    # Wiki.js keys always expire (`ms` duration); ten years, as the integrations have no renewal step.
    key_expiration: str = "10y"
    wait_seconds: int = 180

    def __post_init__(self) -> None:
        if not self.site_url.startswith(("https://", "http://")):
            raise ValueError(f"site URL {self.site_url!r} must be an http(s) URL")
        if not _KEY_NAME.match(self.key_name):
            raise ValueError(f"API key name {self.key_name!r}: use lowercase letters, digits and '-'")
        if not _DURATION.match(self.key_expiration):
            raise ValueError(f"key expiration {self.key_expiration!r} must be a duration such as 10y")


_LOGIN = """mutation ($username: String!, $password: String!) {
  authentication { login(username: $username, password: $password, strategy: "local") {
    responseResult { succeeded message } jwt } } }"""
_ENABLE_API = """mutation {
  authentication { setApiState(enabled: true) { responseResult { succeeded message } } } }"""
_API_KEYS = """query { authentication { apiKeys { id name isRevoked expiration } } }"""
_CREATE_KEY = """mutation ($name: String!, $expiration: String!) {
  authentication { createApiKey(name: $name, expiration: $expiration, fullAccess: true) {
    responseResult { succeeded message } key } } }"""

GRAPHQL_DOCUMENTS = (_LOGIN, _ENABLE_API, _API_KEYS, _CREATE_KEY)

_NODE_SCRIPT = r"""'use strict';
// Rendered by CERES: finishes Wiki.js's setup wizard, turns the GraphQL API on and issues
// CERES's API key, printed last. Secrets come from the environment, never from this text.
const http = require('http');

const settings = __SETTINGS__;
const GRAPHQL = __GRAPHQL__;
const email = process.env[settings.emailVariable];
const password = process.env[settings.passwordVariable];

function log(message) { process.stderr.write(`ceres: ${message}\n`); }
function fail(message) { log(message); process.exit(1); }

function request(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port: settings.port, method, path, timeout: 30000,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

function parse(text) {
  try { return JSON.parse(text); } catch (err) { return null; }
}

// The setup wizard answers POST /graphql with 404; the wiki proper answers with 200.
async function mode() {
  try {
    const res = await request('POST', '/graphql', { query: '{ __typename }' });
    if (res.status === 404) return 'setup';
    if (res.status === 200) return 'ready';
  } catch (err) { /* not listening: starting, or restarting after setup */ }
  return 'starting';
}

async function waitFor(wanted) {
  const deadline = Date.now() + settings.waitSeconds * 1000;
  for (;;) {
    const seen = await mode();
    if (wanted.includes(seen)) return seen;
    if (Date.now() > deadline) fail(`Wiki.js did not become ${wanted.join(' or ')} within ${settings.waitSeconds}s`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function graphql(query, variables, jwt) {
  const res = await request('POST', '/graphql', { query, variables }, jwt ? { Authorization: `Bearer ${jwt}` } : {});
  const body = parse(res.text);
  if (res.status !== 200 || !body || body.errors) fail(`GraphQL answered ${res.status}: ${res.text.slice(0, 500)}`);
  return body.data.authentication;
}

function succeeded(result, what) {
  const status = result && result.responseResult;
  if (!status || !status.succeeded) fail(`${what} failed: ${status ? status.message : 'no answer'}`);
  return result;
}

async function finishSetup() {
  const res = await request('POST', '/finalize', {
    adminEmail: email, adminPassword: password, adminPasswordConfirm: password,
    siteUrl: settings.siteUrl, telemetry: false,
  });
  const body = parse(res.text);
  // The wizard reports failure as 200 with ok: false.
  if (!body || body.ok !== true) fail(`setup failed: ${body ? body.error : res.status}`);
  log('finished the setup wizard');
}

async function main() {
  if (!email || !password) fail(`${settings.emailVariable} and ${settings.passwordVariable} must be set`);
  if (await waitFor(['setup', 'ready']) === 'setup') {
    await finishSetup();
    await waitFor(['ready']);
  }
  const { jwt } = succeeded((await graphql(GRAPHQL.login, { username: email, password })).login, 'login');
  succeeded((await graphql(GRAPHQL.enableApi, {}, jwt)).setApiState, 'turning the API on');

  const keys = (await graphql(GRAPHQL.apiKeys, {}, jwt)).apiKeys || [];
  const live = keys.filter((k) => k.name === settings.keyName && !k.isRevoked && Date.parse(k.expiration) > Date.now());
  if (live.length > 0) {
    fail(`an API key named '${settings.keyName}' exists (id ${live.map((k) => k.id).join(', ')}) and Wiki.js never `
      + 'shows a key again. To issue a new one, revoke it in Administration > API Access, then run pulumi up.');
  }
  const created = succeeded((await graphql(GRAPHQL.createKey, {
    name: settings.keyName, expiration: settings.keyExpiration,
  }, jwt)).createApiKey, 'creating the API key');
  log(`issued API key '${settings.keyName}'`);
  process.stdout.write(`${created.key}\n`);
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
"""


def node_script(bootstrap: WikiJsBootstrap) -> str:
    settings = {
        "siteUrl": bootstrap.site_url,
        "port": bootstrap.port,
        "keyName": bootstrap.key_name,
        "keyExpiration": bootstrap.key_expiration,
        "waitSeconds": bootstrap.wait_seconds,
        "emailVariable": ADMIN_EMAIL_VARIABLE,
        "passwordVariable": ADMIN_PASSWORD_VARIABLE,
    }
    documents = dict(zip(("login", "enableApi", "apiKeys", "createKey"), GRAPHQL_DOCUMENTS))
    return (
        _NODE_SCRIPT
        .replace("__SETTINGS__", json.dumps(settings, indent=2))
        .replace("__GRAPHQL__", json.dumps(documents, indent=2))
    )


def bootstrap_script(bootstrap: WikiJsBootstrap) -> str:
    """Idempotent: the wizard is finished only while it is still showing, the API switch is set
    either way, and the key is issued only if no live key of that name exists. Wiki.js shows a key
    once, so when one exists the run stops with instructions rather than print nothing or rotate it.
    """
    return f"""\
set -eu
exec node - <<'CERES_NODE'
{node_script(bootstrap)}CERES_NODE
"""
