"""The Loki ruler rules: every LogQL expression parsed by Grafana's own grammar, every line filter
run against log lines in the real formats.

No Loki binary installs here (Debian's `loki` is a genetics package), so the expressions go
through `@grafana/lezer-logql` (the LogQL grammar Grafana's query editor uses) on `@lezer/lr`,
run by node; npm installs them once into a cache under the temp dir (needs the npm registry).
Then each rule's pipeline (line filters, `regexp`/`json` stages, the numeric label filter) is
applied here, stage by stage, to sample lines in the format each service really writes
(sources in components/config/log_alert_rules.py): the matching ones pass, the others do not.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from components.config.log_alert_rules import RULES_FILE, LogAlertSettings, log_alert_rules, loki_rules

TIMEOUT = 60
# The grammar's parse tables are built for one runtime: 0.4.2 names @lezer/lr 1.4.10 as its exact peer.
PACKAGES = ("@grafana/lezer-logql@0.4.2", "@lezer/lr@1.4.10")
# Named after exactly these packages: other tests keep their own installs in the same cache.
NPM_CACHE = Path(tempfile.gettempdir()) / "ceres-test-node-modules" / "+".join(
    re.sub(r"[^a-z0-9.@-]", "-", package.lstrip("@")) for package in PACKAGES)
ALL = LogAlertSettings(services=frozenset({"keycloak", "caddy", "gitea", "grafana", "loki"}))

PARSER = r"""
"use strict";
const { parser } = require("@grafana/lezer-logql");
const expressions = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(expressions.map((expression) => {
    const errors = [], nodes = new Set();
    parser.parse(expression).iterate({ enter: (node) => {
        if (node.type.isError) errors.push(node.from);
        else nodes.add(node.name);
    } });
    return { errors, nodes: [...nodes] };
})));
"""

# Keycloak 26, default console format `%d %-5p [%c] (%t) %s%e` with the jboss-logging listener's quoted values.
KEYCLOAK_FAILED = (
    '2025-06-01 10:15:02,345 WARN  [org.keycloak.events] (executor-thread-12) type="LOGIN_ERROR", '
    'realmId="0c5f6b7e-9a43-4c8e-9d1e-2f6f3a1b8c55", realmName="ceres", clientId="grafana", userId="null", '
    'ipAddress="203.0.113.7", error="user_not_found", auth_method="openid-connect", auth_type="code", '
    'redirect_uri="https://grafana.example.com/login/generic_oauth", code_id="4b2f", username="mallory", '
    'authSessionParentId="4b2f", authSessionTabId="x1Yz"'
)
KEYCLOAK_OTHER = [
    '2025-06-01 10:15:09,001 WARN  [org.keycloak.events] (executor-thread-3) type="CODE_TO_TOKEN_ERROR", '
    'realmId="0c5f", realmName="ceres", clientId="grafana", userId="null", ipAddress="172.18.0.9", '
    'error="invalid_code", grant_type="authorization_code"',
    "2025-06-01 10:14:00,100 INFO  [io.quarkus] (main) Keycloak 26.3.3 on JVM started in 12.1s. Listening on: http://0.0.0.0:8080",
]


def caddy_line(logger: str, status: int) -> str:
    """One line of Caddy 2's JSON log as the `log` directive writes it."""
    entry = {"level": "error" if status >= 500 else "info", "ts": 1717236902.123, "logger": logger,
             "msg": "handled request" if "access" in logger else "dial tcp 172.18.0.5:3000: connect: connection refused",
             "request": {"remote_ip": "172.18.0.1", "remote_port": "51234", "client_ip": "203.0.113.7",
                         "proto": "HTTP/2.0", "method": "GET", "host": "git.example.com", "uri": "/explore",
                         "headers": {"User-Agent": ["curl/8.5.0"], "Accept": ["*/*"]},
                         "tls": {"resumed": False, "version": 772, "cipher_suite": 4865, "proto": "h2",
                                 "server_name": "git.example.com"}},
             "bytes_read": 0, "user_id": "", "duration": 0.0021, "size": 0, "status": status,
             "resp_headers": {"Server": ["Caddy"]}}
    return json.dumps(entry, separators=(",", ":"))


CADDY_5XX = [caddy_line("http.log.access.log3", 502), caddy_line("http.log.access.log0", 503)]
# A 404 is the client's; Caddy's error logger repeats a failed request's status, which must not count twice.
CADDY_OTHER = [caddy_line("http.log.access.log3", 404), caddy_line("http.log.error.log3", 502),
               '{"level":"info","ts":1717236000.5,"logger":"tls","msg":"finished cleaning storage units"}']

# Gitea 1.24 console, default flags (date time medfile:line:shortfuncname [levelinitial]).
GITEA_ERRORS = [
    "2025/06/01 10:15:02 ...s/web/repo/view.go:204:Home() [E] GetCommit: object does not exist [id: 1a2b3c]",
    "2025/06/01 10:15:03 cmd/web.go:312:runWeb() [F] Failed to start server: listen tcp :3000: bind: address already in use",
]
GITEA_OTHER = [
    "2025/06/01 10:15:02 ...eb/routing/logger.go:102:func1() [I] router: completed GET /api/healthz for 127.0.0.1:0, 200 OK in 0.8ms",
    "2025/06/01 10:15:04 ...ces/cron/tasks.go:51:RunWithUser() [W] Cron task update_mirrors took 11s",
    "2025/06/01 10:15:05 ...ules/setting/log.go:60:Info() [I] user searched for [E] in issues",
]

SAMPLES = {
    "KeycloakRepeatedLoginFailures": ("keycloak", [KEYCLOAK_FAILED], KEYCLOAK_OTHER),
    "CaddyServerErrorBurst": ("caddy", CADDY_5XX, CADDY_OTHER),
    "GiteaErrors": ("gitea", GITEA_ERRORS, GITEA_OTHER),
}


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"`{binary}` not found: install the Debian package `{package}` (Node.js 18 or newer, with npm)")
    return path


@pytest.fixture(scope="module")
def node_modules() -> Path:
    modules = NPM_CACHE / "node_modules"
    wanted = [package.rpartition("@")[0] for package in PACKAGES]
    if not all((modules / name / "package.json").exists() for name in wanted):
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [_require("npm", "npm"), "install", "--no-audit", "--no-fund", "--no-save", "--no-package-lock",
             "--loglevel=error", "--prefix", str(NPM_CACHE), *PACKAGES],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"npm install {PACKAGES} failed (needs the npm registry):\n{result.stderr}"
    return modules


def parse(node_modules: Path, expressions: list[str]) -> list[dict]:
    result = subprocess.run([_require("node", "nodejs"), "-e", PARSER], input=json.dumps(expressions),
                            env={"NODE_PATH": str(node_modules), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def rules(settings: LogAlertSettings = ALL) -> dict[str, dict]:
    document = yaml.safe_load(loki_rules(settings))
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


# --- a small evaluator for the pipeline stages these rules use -------------------------------------

_SELECTOR = re.compile(r"count_over_time\(\{(?P<matchers>[^}]*)\}(?P<pipeline>.*) \[(?P<window>\w+)\]\)")
_STRING = r'(?:`[^`]*`|"(?:[^"\\]|\\.)*")'
_STAGE = re.compile(
    rf"\s*\|\s*(?:(?P<op>[=~])\s*(?P<needle>{_STRING})"
    rf"|regexp\s+(?P<regexp>{_STRING})"
    rf"|json\s+(?P<json>\w+=\"[^\"]*\"(?:\s*,\s*\w+=\"[^\"]*\")*)"
    rf"|(?P<label>\w+)\s*(?P<cmp>>=|<=|==|!=|>|<)\s*(?P<number>\d+))"
)


def _unquote(literal: str) -> str:
    return literal[1:-1] if literal.startswith("`") else json.loads(literal)


def pipeline_stages(expr: str) -> tuple[dict[str, str], list[re.Match]]:
    found = _SELECTOR.search(expr)
    assert found, f"no count_over_time over a stream selector in {expr!r}"
    matchers = dict(re.findall(r'(\w+)="([^"]*)"', found.group("matchers")))
    pipeline, stages, position = found.group("pipeline"), [], 0
    while position < len(pipeline):
        stage = _STAGE.match(pipeline, position)
        assert stage, f"a stage this test does not know at {pipeline[position:]!r}"
        stages.append(stage)
        position = stage.end()
    return matchers, stages


def run_pipeline(stages: list[re.Match], line: str) -> dict[str, str] | None:
    """The labels a line leaves the pipeline with, or None when a stage drops it."""
    labels: dict[str, str] = {}
    for stage in stages:
        if stage.group("op") == "=":
            if _unquote(stage.group("needle")) not in line:
                return None
        elif stage.group("op") == "~":
            if not re.search(_unquote(stage.group("needle")), line):
                return None
        elif stage.group("regexp"):
            found = re.search(_unquote(stage.group("regexp")), line)
            labels |= found.groupdict() if found else {}
        elif stage.group("json"):
            document = json.loads(line)
            for name, path in re.findall(r'(\w+)="([^"]*)"', stage.group("json")):
                value = document
                for key in path.split("."):
                    value = value.get(key) if isinstance(value, dict) else None
                if value is not None:
                    labels[name] = str(value)
        else:
            value = labels.get(stage.group("label"))
            compare = {">=": float.__ge__, "<=": float.__le__, "==": float.__eq__, "!=": float.__ne__,
                       ">": float.__gt__, "<": float.__lt__}[stage.group("cmp")]
            if value is None or not compare(float(value), float(stage.group("number"))):
                return None
    return labels


# --- tests --------------------------------------------------------------------------------------------

def test_every_expression_parses_with_grafanas_logql_grammar(node_modules: Path) -> None:
    rendered = rules()
    assert set(rendered) == set(SAMPLES)
    parsed = parse(node_modules, [rule["expr"] for rule in rendered.values()])
    for (name, rule), tree in zip(rendered.items(), parsed):
        assert tree["errors"] == [], f"{name}: LogQL syntax errors at offsets {tree['errors']} in {rule['expr']!r}"
        # A metric query compared with a threshold, not a log query: the ruler needs numbers.
        assert {"MetricExpr", "VectorAggregationExpr", "RangeAggregationExpr", "BinOpExpr"} <= set(tree["nodes"]), name


def test_the_grammar_catches_broken_expressions(node_modules: Path) -> None:
    broken = ['sum(count_over_time({service="gitea"} |~ `x` [5m]) > 1', '{service="caddy" | json']
    assert all(tree["errors"] for tree in parse(node_modules, broken))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_rule_selects_its_service_and_matches_only_the_lines_it_is_about(name: str) -> None:
    service, matching, other = SAMPLES[name]
    rule = rules()[name]
    matchers, stages = pipeline_stages(rule["expr"])
    assert matchers == {"service": service}
    assert rule["labels"]["service"] == service
    for line in matching:
        assert run_pipeline(stages, line) is not None, f"{name} misses {line!r}"
    for line in other:
        assert run_pipeline(stages, line) is None, f"{name} wrongly counts {line!r}"


def test_extracted_labels_are_the_ones_the_alert_groups_by_and_names() -> None:
    expected = {
        "KeycloakRepeatedLoginFailures": (KEYCLOAK_FAILED, {"realm": "ceres", "ip_address": "203.0.113.7"}),
        "CaddyServerErrorBurst": (CADDY_5XX[0], {"status": "502", "request_host": "git.example.com"}),
        "GiteaErrors": (GITEA_ERRORS[0], {}),
    }
    for name, rule in rules().items():
        line, labels = expected[name]
        assert run_pipeline(pipeline_stages(rule["expr"])[1], line) == labels
        by = set(re.match(r"sum by \(([^)]*)\)", rule["expr"]).group(1).replace(" ", "").split(","))
        assert "stack" in by, f"{name}: Loki alerts carry no external labels; keep the stack"
        used = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
        assert used <= by, f"{name}: annotations name labels {used - by} the result does not have"
        assert (by - {"stack", "container"}) <= set(labels), f"{name}: groups by labels no stage extracts"


def test_rules_have_severity_annotations_and_thresholds() -> None:
    tuned = LogAlertSettings(services=frozenset({"keycloak", "caddy", "gitea"}), login_failures_count=3,
                             login_failures_window="15m", caddy_5xx_count=50, gitea_errors_window="1h")
    rendered = rules(tuned)
    for name, rule in rendered.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, name
        assert rule["annotations"]["runbook"].count("`") >= 2, f"{name}: the runbook names a query or command"
    assert rendered["KeycloakRepeatedLoginFailures"]["expr"].endswith("[15m])) > 3")
    assert rendered["CaddyServerErrorBurst"]["expr"].endswith("[5m])) > 50")
    assert rendered["GiteaErrors"]["expr"].endswith("[1h])) > 5")


def test_rules_for_absent_services_are_left_out() -> None:
    assert set(rules(LogAlertSettings(services=frozenset({"caddy"})))) == {"CaddyServerErrorBurst"}
    assert set(rules(LogAlertSettings(services=frozenset({"keycloak", "gitea"})))) == {
        "KeycloakRepeatedLoginFailures", "GiteaErrors"}
    assert log_alert_rules(LogAlertSettings(services=frozenset())) == {"groups": []}
    assert RULES_FILE.endswith(".yaml")


@pytest.mark.parametrize("changes, field_name", [
    ({"login_failures_count": 0}, "login_failures_count"),
    ({"caddy_5xx_count": "20"}, "caddy_5xx_count"),
    ({"gitea_errors_window": "10 minutes"}, "gitea_errors_window"),
    ({"login_failures_window": "0m"}, "login_failures_window"),
])
def test_bad_settings_fail_naming_the_field(changes: dict, field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        LogAlertSettings(**{"services": frozenset({"gitea"}), **changes})
