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

_BOOTSTRAP_HEADER = r"""'use strict';
// Rendered by CERES: finishes Wiki.js's setup wizard, turns the GraphQL API on and issues
// CERES's API key, printed last. Secrets come from the environment, never from this text.
"""

# Shared by both scripts: settings and GraphQL documents spliced in, HTTP to the local wiki.
_PRELUDE = r"""const http = require('http');

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
"""

_BOOTSTRAP_MAIN = r"""
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
        (_BOOTSTRAP_HEADER + _PRELUDE + _BOOTSTRAP_MAIN)
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


# Single sign-on. Wiki.js 2.5's own `keycloak` strategy cannot map groups (it passes only id,
# e-mail and name to processProfile); its generic `oidc` strategy can: with `mapGroups` it puts the
# user, on every sign-in, in exactly the Wiki.js groups named in the groups claim
# (server/modules/authentication/oidc). The instance key is ours to choose and names the callback.
SSO_STRATEGY_KEY = "keycloak"
SSO_CALLBACK_PATH = f"/login/{SSO_STRATEGY_KEY}/callback"
CLIENT_SECRET_VARIABLE = "CERES_OIDC_CLIENT_SECRET"
# Any group holding manage:system passes every check (server/core/auth.js checkAccess).
ADMIN_PERMISSIONS = ("manage:system",)
# What people of the platform may do in the wiki: read, write and organise pages and assets.
EDITOR_PERMISSIONS = (
    "read:pages", "read:assets", "read:comments", "write:comments", "read:source", "read:history",
    "write:pages", "manage:pages", "write:assets",
)

_GROUP_NAME = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
_URL = re.compile(r"^https?://[^\s'\"]+$")


@dataclass(frozen=True)
class WikiJsSso:
    """The sign-in strategy and the two groups it maps to. Browser-facing URLs are public; the
    token and userinfo calls Wiki.js makes itself stay on the internal network."""

    port: int
    client_id: str
    authorization_url: str
    token_url: str
    userinfo_url: str
    issuer: str
    logout_url: str
    admin_group: str
    user_group: str
    strategy_key: str = SSO_STRATEGY_KEY
    display_name: str = "Keycloak"
    wait_seconds: int = 180

    def __post_init__(self) -> None:
        for url in (self.authorization_url, self.token_url, self.userinfo_url, self.issuer, self.logout_url):
            if not _URL.match(url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        for name in (self.admin_group, self.user_group):
            if not _GROUP_NAME.match(name):
                raise ValueError(f"group {name!r}: start with a letter, then lowercase letters, digits or '-'")
        if self.admin_group == self.user_group:
            raise ValueError("the admin and user groups must differ")
        if not _KEY_NAME.match(self.strategy_key) or not _KEY_NAME.match(self.client_id):
            raise ValueError(f"{self.strategy_key!r} / {self.client_id!r}: use lowercase letters, digits and '-'")


_SSO_STRATEGIES = """query { authentication { strategies { key props { key } } } }"""
_SSO_ACTIVE = """query { authentication { activeStrategies {
  key strategy { key } displayName order isEnabled config { key value }
  selfRegistration domainWhitelist autoEnrollGroups } } }"""
_SSO_UPDATE = """mutation ($strategies: [AuthenticationStrategyInput]!) {
  authentication { updateStrategies(strategies: $strategies) { responseResult { succeeded message } } } }"""
_SSO_GROUPS = """query { groups { list { id name isSystem } } }"""
_SSO_GROUP = """query ($id: Int!) { groups { single(id: $id) {
  id name redirectOnLogin permissions pageRules { id deny match roles path locales } } } }"""
_SSO_CREATE_GROUP = """mutation ($name: String!) {
  groups { create(name: $name) { responseResult { succeeded message } group { id name } } } }"""
_SSO_UPDATE_GROUP = """mutation ($id: Int!, $name: String!, $redirectOnLogin: String!, $permissions: [String]!,
  $pageRules: [PageRuleInput]!) {
  groups { update(id: $id, name: $name, redirectOnLogin: $redirectOnLogin, permissions: $permissions,
    pageRules: $pageRules) { responseResult { succeeded message } } } }"""

SSO_GRAPHQL_DOCUMENTS = (
    _LOGIN, _SSO_STRATEGIES, _SSO_ACTIVE, _SSO_UPDATE, _SSO_GROUPS, _SSO_GROUP, _SSO_CREATE_GROUP, _SSO_UPDATE_GROUP,
)

_SSO_HEADER = r"""'use strict';
// Rendered by CERES: signs in through the realm. Makes sure of the admin and user groups, then
// sets the OpenID Connect strategy, keeping every other strategy (the local login among them) as
// it is. Prints created, updated or unchanged last. Secrets come from the environment only.
"""

_SSO_MAIN = r"""
const secret = process.env[settings.secretVariable];
const LOCAL = {
  key: 'local', strategyKey: 'local', displayName: 'Local', order: 0, isEnabled: true, config: [],
  selfRegistration: false, domainWhitelist: [], autoEnrollGroups: [],
};

// Never echoes the answer: the strategies it carries include client secrets.
async function query(document, variables, jwt) {
  const headers = jwt ? { Authorization: `Bearer ${jwt}` } : {};
  const res = await request('POST', '/graphql', { query: document, variables }, headers);
  const body = parse(res.text);
  if (res.status !== 200 || !body || body.errors) {
    const why = body && body.errors ? body.errors.map((e) => e.message).join('; ') : 'no GraphQL body';
    fail(`GraphQL answered ${res.status}: ${why}`);
  }
  return body.data;
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
// Strategy settings travel as JSON text: {"v": value} in, {...definition, value} out.
const wrap = (value) => JSON.stringify({ v: value });
const stored = (entry) => { const parsed = parse(entry.value); return parsed ? parsed.value : undefined; };

async function checkSupport(jwt) {
  const available = (await query(GRAPHQL.strategies, {}, jwt)).authentication.strategies || [];
  const oidc = available.find((s) => s.key === 'oidc');
  const declared = new Set(((oidc && oidc.props) || []).map((p) => p.key));
  const missing = ['clientSecret', ...Object.keys(settings.config)].filter((key) => !declared.has(key));
  if (missing.length > 0) {
    fail(`this Wiki.js's OpenID Connect strategy has no ${missing.join(', ')}: CERES needs Wiki.js 2.5 with group mapping`);
  }
}

async function updateGroup(group, permissions, jwt) {
  succeeded((await query(GRAPHQL.updateGroup, {
    id: group.id, name: group.name, redirectOnLogin: group.redirectOnLogin || '/', permissions, pageRules: group.pageRules,
  }, jwt)).groups.update, `setting the permissions of group '${group.name}'`);
}

// A missing group is created with its permissions; an existing one is left as its admins made it,
// except that the admin group always keeps what makes it the admin group.
async function ensureGroups(jwt) {
  const existing = (await query(GRAPHQL.groups, {}, jwt)).groups.list || [];
  for (const wanted of settings.groups) {
    const found = existing.find((g) => g.name === wanted.name);
    if (!found) {
      const { group } = succeeded((await query(GRAPHQL.createGroup, { name: wanted.name }, jwt)).groups.create,
        `creating group '${wanted.name}'`);
      await updateGroup({ ...group, pageRules: wanted.pageRules }, wanted.permissions, jwt);
      log(`created group '${wanted.name}'`);
      continue;
    }
    if (wanted.required.length === 0) continue;
    const group = (await query(GRAPHQL.group, { id: found.id }, jwt)).groups.single;
    const lacking = wanted.required.filter((p) => !group.permissions.includes(p));
    if (lacking.length > 0) {
      await updateGroup(group, [...group.permissions, ...lacking], jwt);
      log(`gave group '${wanted.name}' ${lacking.join(', ')}`);
    }
  }
}

function asInput(strategy) {
  return {
    key: strategy.key, strategyKey: strategy.strategy.key, displayName: strategy.displayName, order: strategy.order,
    isEnabled: strategy.isEnabled, selfRegistration: strategy.selfRegistration,
    domainWhitelist: strategy.domainWhitelist, autoEnrollGroups: strategy.autoEnrollGroups,
    config: (strategy.config || []).map((entry) => ({ key: entry.key, value: wrap(stored(entry)) })),
  };
}

function wantedStrategy(order) {
  return {
    key: settings.strategyKey, strategyKey: 'oidc', displayName: settings.displayName, order, isEnabled: true,
    // Anyone the realm signs in gets an account; mapGroups then decides their groups.
    selfRegistration: true, domainWhitelist: [], autoEnrollGroups: [],
    config: Object.entries({ ...settings.config, clientSecret: secret })
      .map(([key, value]) => ({ key, value: wrap(value) })),
  };
}

function isCurrent(strategy, wanted) {
  if (!strategy) return false;
  const values = Object.fromEntries((strategy.config || []).map((entry) => [entry.key, stored(entry)]));
  return strategy.strategy.key === wanted.strategyKey && strategy.displayName === wanted.displayName
    && strategy.isEnabled === wanted.isEnabled && strategy.selfRegistration === wanted.selfRegistration
    && same(strategy.domainWhitelist, wanted.domainWhitelist) && same(strategy.autoEnrollGroups, wanted.autoEnrollGroups)
    && wanted.config.every((entry) => same(values[entry.key], JSON.parse(entry.value).v));
}

async function main() {
  if (!email || !password || !secret) {
    fail(`${settings.emailVariable}, ${settings.passwordVariable} and ${settings.secretVariable} must be set`);
  }
  await waitFor(['ready']);
  const { jwt } = succeeded((await query(GRAPHQL.login, { username: email, password })).authentication.login, 'login');
  await checkSupport(jwt);
  await ensureGroups(jwt);

  const active = (await query(GRAPHQL.active, {}, jwt)).authentication.activeStrategies || [];
  const current = active.find((s) => s.key === settings.strategyKey);
  const others = active.filter((s) => s.key !== settings.strategyKey);
  const wanted = wantedStrategy(current ? current.order : Math.max(-1, ...others.map((s) => s.order)) + 1);
  if (isCurrent(current, wanted)) {
    log(`strategy '${settings.strategyKey}' is up to date`);
    process.stdout.write('unchanged\n');
    return;
  }
  // updateStrategies replaces the whole list: what is not sent is deleted.
  const strategies = others.map(asInput);
  if (!strategies.some((s) => s.key === 'local')) strategies.unshift(LOCAL);
  strategies.push(wanted);
  succeeded((await query(GRAPHQL.update, { strategies }, jwt)).authentication.updateStrategies, 'updating the strategies');
  log(`${current ? 'updated' : 'created'} strategy '${settings.strategyKey}'`);
  process.stdout.write(`${current ? 'updated' : 'created'}\n`);
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
"""


def _sso_groups(sso: WikiJsSso) -> list[dict]:
    editor_rule = {"id": "ceres-editors", "deny": False, "match": "START", "roles": list(EDITOR_PERMISSIONS),
                   "path": "", "locales": []}
    return [
        {"name": sso.admin_group, "permissions": list(ADMIN_PERMISSIONS), "pageRules": [],
         "required": list(ADMIN_PERMISSIONS)},
        {"name": sso.user_group, "permissions": list(EDITOR_PERMISSIONS), "pageRules": [editor_rule], "required": []},
    ]


def sso_node_script(sso: WikiJsSso) -> str:
    settings = {
        "port": sso.port,
        "waitSeconds": sso.wait_seconds,
        "emailVariable": ADMIN_EMAIL_VARIABLE,
        "passwordVariable": ADMIN_PASSWORD_VARIABLE,
        "secretVariable": CLIENT_SECRET_VARIABLE,
        "strategyKey": sso.strategy_key,
        "displayName": sso.display_name,
        "config": {
            "clientId": sso.client_id,
            "authorizationURL": sso.authorization_url,
            "tokenURL": sso.token_url,
            "userInfoURL": sso.userinfo_url,
            "issuer": sso.issuer,
            "emailClaim": "email",
            "displayNameClaim": "name",
            "mapGroups": True,
            "groupsClaim": "groups",
            "logoutURL": sso.logout_url,
        },
        "groups": _sso_groups(sso),
    }
    names = ("login", "strategies", "active", "update", "groups", "group", "createGroup", "updateGroup")
    return (
        (_SSO_HEADER + _PRELUDE + _SSO_MAIN)
        .replace("__SETTINGS__", json.dumps(settings, indent=2))
        .replace("__GRAPHQL__", json.dumps(dict(zip(names, SSO_GRAPHQL_DOCUMENTS)), indent=2))
    )


def sso_script(sso: WikiJsSso) -> str:
    """Idempotent: the groups are created only when missing, and the strategy list is sent only
    when ours differs from what the wiki has (a rotated secret, a changed URL); the wiki then
    re-initialises its strategies at once. Last stdout line: created, updated or unchanged."""
    return f"""\
set -eu
exec node - <<'CERES_NODE'
{sso_node_script(sso)}CERES_NODE
"""
