"""The rendered Alloy config, parsed by a small Alloy-syntax reader and checked against the docs.

No Alloy binary is installable here (Debian, PyPI and npm ship none), so `alloy validate` cannot
run. Instead: a tokenizer and recursive-descent parser for the subset of Alloy syntax the config
uses (blocks with optional labels, attributes, strings, lists, references), then checks that every
block is closed, every component reference points at a declared component and an export it has,
every argument is documented, and the relabel rules do what the labels contract says when applied
to discovery targets. Sources read (grafana/alloy `docs/sources/reference/components/`, Alloy 1.x):

- `discovery/discovery.docker.md`: arguments, the `targets` export, `__meta_docker_container_*`.
- `discovery/discovery.relabel.md` and `shared/reference/components/rule-block.md`: `targets`,
  exports `output`/`rules`, rule arguments and actions (regex default `(.*)`, replacement `$1`).
- `loki/loki.source.docker.md`: arguments; and its source
  (`internal/component/loki/source/docker/`): a target needs `__meta_docker_container_id`, and a
  target's labels minus those starting with `__` become the stream labels.
- `loki/loki.write.md`: `endpoint` block, `url`, the `receiver` export.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest

from components.config.alloy import (
    CONTAINER_LABELS,
    AlloySettings,
    config_alloy,
    docker_meta_label,
)

PUSH_URL = "http://loki:3100/loki/api/v1/push"

# Documented arguments and blocks (block -> its arguments) per component, and its exports.
COMPONENTS = {
    "discovery.docker": {
        "arguments": {"host", "bearer_token_file", "bearer_token", "enable_http2", "follow_redirects",
                      "http_headers", "host_networking_host", "match_first_network", "no_proxy", "port",
                      "proxy_connect_header", "proxy_from_environment", "proxy_url", "refresh_interval"},
        "required": {"host"},
        "blocks": {"filter": {"name", "values"}},
        "exports": {"targets"},
    },
    "discovery.relabel": {
        "arguments": {"targets"},
        "required": {"targets"},
        "blocks": {"rule": {"action", "modulus", "regex", "replacement", "separator", "source_labels", "target_label"}},
        "exports": {"output", "rules"},
    },
    "loki.source.docker": {
        "arguments": {"forward_to", "host", "labels", "targets", "refresh_interval", "relabel_rules"},
        "required": {"forward_to", "host", "targets"},
        "blocks": {},
        "exports": set(),
    },
    "loki.write": {
        "arguments": {"external_labels", "max_streams"},
        "required": set(),
        "blocks": {"endpoint": {"url", "batch_size", "batch_wait", "bearer_token_file", "bearer_token",
                                "enable_http2", "follow_redirects", "http_headers", "headers",
                                "max_backoff_period", "max_backoff_retries", "min_backoff_period", "name",
                                "no_proxy", "proxy_connect_header", "proxy_from_environment", "proxy_url",
                                "remote_timeout", "retry_on_http_429", "tenant_id"}},
        "exports": {"receiver"},
    },
}
ACTIONS = {"drop", "dropequal", "hashmod", "keep", "keepequal", "labeldrop", "labelkeep", "labelmap",
           "lowercase", "replace", "uppercase"}


# --- a reader for the Alloy syntax subset ------------------------------------------------------

TOKEN = re.compile(r"""
    (?P<space>\s+) | (?P<comment>//[^\n]*) | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>\d+(?:\.\d+)?) | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[{}\[\]=,])
""", re.VERBOSE)


@dataclass
class Ref:
    path: str


@dataclass
class Block:
    name: str
    label: str | None
    attributes: dict = field(default_factory=dict)
    blocks: list["Block"] = field(default_factory=list)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        match = TOKEN.match(text, position)
        assert match, f"unexpected character {text[position]!r} at offset {position}"
        if match.lastgroup not in ("space", "comment"):
            tokens.append((match.lastgroup, match.group()))
        position = match.end()
    return tokens


class Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        assert token and token[0] == kind and (value is None or token[1] == value), f"expected {value or kind}, got {token}"
        self.at += 1
        return token[1]

    def body(self, closing: bool) -> Block:
        block = Block("", None)
        while self.peek() and self.peek() != ("punct", "}"):
            name = self.take("name")
            if self.peek() == ("punct", "="):
                self.take("punct", "=")
                assert name not in block.attributes, f"attribute {name} set twice"
                block.attributes[name] = self.expression()
            else:
                label = json.loads(self.take("string")) if self.peek() and self.peek()[0] == "string" else None
                self.take("punct", "{")
                child = self.body(closing=True)
                self.take("punct", "}")
                block.blocks.append(Block(name, label, child.attributes, child.blocks))
        assert closing or self.peek() is None, f"unbalanced '}}' at token {self.at}"
        assert not closing or self.peek() == ("punct", "}"), "block not closed before end of file"
        return block

    def expression(self):
        kind, value = self.peek()
        if kind == "string":
            self.at += 1
            return json.loads(value)
        if kind == "number":
            self.at += 1
            return float(value)
        if kind == "name":
            self.at += 1
            return {"true": True, "false": False}.get(value, Ref(value))
        if (kind, value) == ("punct", "["):
            self.take("punct", "[")
            items = []
            while self.peek() != ("punct", "]"):
                items.append(self.expression())
                if self.peek() == ("punct", ","):
                    self.take("punct", ",")
            self.take("punct", "]")
            return items
        raise AssertionError(f"unexpected {value!r} in an expression")


def parse(text: str) -> list[Block]:
    return Parser(text).body(closing=False).blocks


def references(value) -> list[str]:
    if isinstance(value, Ref):
        return [value.path]
    if isinstance(value, list):
        return [path for item in value for path in references(item)]
    return []


# --- relabeling as documented (Prometheus semantics, fully anchored regexes) --------------------

def relabel(target: dict[str, str], rules: list[Block]) -> dict[str, str] | None:
    labels = dict(target)
    for rule in rules:
        arguments = rule.attributes
        action = arguments.get("action", "replace")
        value = arguments.get("separator", ";").join(labels.get(name, "") for name in arguments.get("source_labels", []))
        match = re.fullmatch(arguments.get("regex", "(.*)"), value)
        if action == "keep" and not match:
            return None
        if action == "replace" and match:
            replacement = re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))) or "", arguments.get("replacement", "$1"))
            labels[arguments["target_label"]] = replacement
    return labels


def discovered(stack: str | None, service: str = "gitea", name: str = "/ceres-dev-gitea") -> dict[str, str]:
    """A target as discovery.docker reports it for one container on one network."""
    target = {
        "__address__": "172.18.0.5:80",
        "__meta_docker_container_id": "c0ffee",
        "__meta_docker_container_name": name,
        "__meta_docker_network_name": "ceres-dev-monitoring",
    }
    if stack is not None:
        target[docker_meta_label("io.ceres.stack")] = stack
        target[docker_meta_label("io.ceres.service")] = service
    return target


def stream_labels(target: dict[str, str]) -> dict[str, str]:
    """What loki.source.docker attaches to each line: the target's labels without `__*`."""
    return {k: v for k, v in target.items() if not k.startswith("__")}


@pytest.fixture
def settings() -> AlloySettings:
    return AlloySettings(stack="dev", host="local", loki_push_url=PUSH_URL)


@pytest.fixture
def components(settings) -> dict[str, Block]:
    blocks = parse(config_alloy(settings))
    return {f"{b.name}.{b.label}": b for b in blocks}


# --- the checks ---------------------------------------------------------------------------------

def test_config_parses_into_four_labelled_components(components):
    assert sorted(components) == [
        "discovery.docker.containers", "discovery.relabel.ceres", "loki.source.docker.containers", "loki.write.loki",
    ]


def test_the_reader_rejects_broken_text():
    with pytest.raises(AssertionError):
        parse('loki.write "a" {\n  endpoint {\n    url = "x"\n  }\n')
    with pytest.raises(AssertionError):
        parse('loki.write "a" { }\n}')
    with pytest.raises(AssertionError):
        parse('loki.write "a" { url = "unterminated }')


def test_every_argument_and_block_is_documented_and_required_ones_are_set(components):
    for key, block in components.items():
        kind = block.name
        doc = COMPONENTS[kind]
        assert block.label and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", block.label), key
        assert set(block.attributes) <= doc["arguments"], f"{key}: {set(block.attributes) - doc['arguments']}"
        assert doc["required"] <= set(block.attributes), f"{key} misses {doc['required'] - set(block.attributes)}"
        for child in block.blocks:
            assert child.name in doc["blocks"], f"{key}: undocumented block {child.name}"
            assert set(child.attributes) <= doc["blocks"][child.name], f"{key} > {child.name}"


def test_every_reference_points_at_a_declared_component_and_its_export(components):
    seen = []
    for key, block in components.items():
        values = list(block.attributes.values()) + [v for child in block.blocks for v in child.attributes.values()]
        for path in (p for value in values for p in references(value)):
            component, _, export = path.rpartition(".")
            assert component in components, f"{key} refers to undeclared {component}"
            assert export in COMPONENTS[components[component].name]["exports"], f"{key}: {component} exports no {export}"
            seen.append(path)
    # The pipeline is wired end to end: discovery -> relabel -> docker source -> loki.write.
    assert sorted(seen) == [
        "discovery.docker.containers.targets", "discovery.relabel.ceres.output", "loki.write.loki.receiver",
    ]


def test_docker_socket_and_loki_push_url(components):
    assert components["discovery.docker.containers"].attributes["host"] == "unix:///var/run/docker.sock"
    assert components["loki.source.docker.containers"].attributes["host"] == "unix:///var/run/docker.sock"
    [endpoint] = components["loki.write.loki"].blocks
    assert endpoint.name == "endpoint" and endpoint.attributes == {"url": PUSH_URL}


def test_rule_actions_are_documented(components):
    for rule in components["discovery.relabel.ceres"].blocks:
        assert rule.attributes.get("action", "replace") in ACTIONS


def test_this_stacks_containers_ship_with_the_platform_labels(components):
    rules = components["discovery.relabel.ceres"].blocks
    target = relabel(discovered("dev"), rules)
    assert target is not None
    # loki.source.docker reads the container through this label; relabeling must keep it.
    assert target["__meta_docker_container_id"] == "c0ffee"
    assert stream_labels(target) == {"service": "gitea", "stack": "dev", "container": "ceres-dev-gitea", "host": "local"}


@pytest.mark.parametrize("other", [None, "prod", "dev2", "xdev", ""])
def test_other_stacks_and_unlabelled_containers_are_not_read(components, other):
    assert relabel(discovered(other), components["discovery.relabel.ceres"].blocks) is None


def test_a_stack_name_with_regex_characters_matches_only_itself():
    rules = {f"{b.name}.{b.label}": b for b in parse(config_alloy(AlloySettings("team.a", "h1", PUSH_URL)))}
    relabel_rules = rules["discovery.relabel.ceres"].blocks
    assert relabel(discovered("team.a"), relabel_rules) is not None
    assert relabel(discovered("teamxa"), relabel_rules) is None


def test_labels_come_from_the_docker_labels_every_ceres_container_carries():
    assert CONTAINER_LABELS == {"service": "io.ceres.service", "stack": "io.ceres.stack"}
    assert docker_meta_label("io.ceres.stack") == "__meta_docker_container_label_io_ceres_stack"


def test_strings_are_escaped():
    text = config_alloy(AlloySettings(stack="dev", host='we"ird\\host', loki_push_url=PUSH_URL))
    relabel_block = next(b for b in parse(text) if b.name == "discovery.relabel")
    host_rule = next(r for r in relabel_block.blocks if r.attributes.get("target_label") == "host")
    assert host_rule.attributes["replacement"] == 'we"ird\\host'


@pytest.mark.parametrize("url", ["http://loki:3100", "loki:3100/loki/api/v1/push", "http://loki:3100/api/prom/push"])
def test_fails_on_a_url_that_is_not_lokis_push_endpoint(url):
    with pytest.raises(ValueError, match="push URL"):
        AlloySettings(stack="dev", host="local", loki_push_url=url)


def test_fails_without_stack_or_host():
    with pytest.raises(ValueError, match="Loki labels"):
        AlloySettings(stack="", host="local", loki_push_url=PUSH_URL)
