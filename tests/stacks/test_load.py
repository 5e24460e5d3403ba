"""The stack spec: good stacks load, and every kind of bad config fails with a message naming the key."""

from __future__ import annotations

import json

import pytest

from stacks.load import ConfigError, load_spec
from tests.conftest import stack_config

DEV = {"ceres:tier": "dev", "ceres:domain": "ceres.localhost"}
PROD_HOSTS = [
    {"name": "node1", "url": "ssh://deploy@node1.example.com", "roles": ["apps", "ha"], "address": "10.0.0.11"},
    {"name": "node2", "url": "ssh://deploy@node2.example.com", "roles": ["ha"], "address": "10.0.0.12"},
    {"name": "node3", "url": "ssh://deploy@node3.example.com", "roles": ["ha"], "address": "10.0.0.13"},
]
PROD = {
    "ceres:tier": "prod",
    "ceres:domain": "ceres.example.com",
    "ceres:tls": json.dumps({"mode": "acme", "email": "ops@example.com"}),
    "ceres:hosts": json.dumps(PROD_HOSTS),
    "ceres:ha": json.dumps({"virtual_ip": "10.0.0.100"}),
    "ceres:backup": json.dumps({"repository": "/srv/backups/ceres"}),
}
STORE = {"endpoint": "s3.eu-central-1.amazonaws.com", "bucket": "acme-backups", "region": "eu-central-1"}


def with_settings(base: dict[str, str], **settings) -> dict[str, str]:
    return {**base, **{f"ceres:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in settings.items()}}


def problems_of(stack: str, config: dict[str, str], secret_keys: set[str] = frozenset()) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_spec(stack, config, secret_keys)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_stack_files_load():
    for stack in ("dev", "prod"):
        config, secret_keys = stack_config(stack)
        spec = load_spec(stack, config, set(secret_keys))
        assert spec.tier == stack


def test_dev_and_prod_differ_by_their_tier_overlay():
    dev, prod = load_spec("dev", DEV), load_spec("prod", PROD)
    assert dev.tls.mode == "internal" and prod.tls.mode == "acme"
    assert not dev.ha.enabled and prod.ha.enabled
    assert dev.services == prod.services  # the same pinned services, from the same defaults


def test_stack_settings_override_defaults_key_by_key():
    spec = load_spec("dev", with_settings(DEV, services={"gitea": {"image": "gitea/gitea:1.24.7"}}))
    assert spec.services.gitea.image == "gitea/gitea:1.24.7"
    assert spec.services.gitea.enabled and spec.services.gitea.memory_mb == 512


def test_the_tier_can_come_from_the_stack_name():
    assert load_spec("dev", {"ceres:domain": "ceres.localhost"}).tier == "dev"


BAD_CONFIGS = [
    # (what is wrong, stack, config, the key path the message must name, a word of the fix)
    ("unknown setting", "dev", with_settings(DEV, domian="x.example.com"), "ceres:domian", "did you mean 'domain'"),
    ("unknown service", "dev", with_settings(DEV, services={"gitlab": {"enabled": True}}), "ceres:services.gitlab", "allowed: alertmanager"),
    ("domain with scheme", "dev", with_settings(DEV, domain="https://ceres.example.com"), "ceres:domain", "bare domain"),
    ("domain with one label", "dev", with_settings(DEV, domain="localhost"), "ceres:domain", "two labels"),
    ("uppercase domain", "dev", with_settings(DEV, domain="Ceres.Example.com"), "ceres:domain", "lowercase"),
    ("image on latest", "dev", with_settings(DEV, services={"gitea": {"image": "gitea/gitea:latest"}}), "ceres:services.gitea.image", "pin a version"),
    ("image without tag", "dev", with_settings(DEV, services={"redis": {"image": "redis"}}), "ceres:services.redis.image", "no version tag"),
    ("memory too small", "dev", with_settings(DEV, services={"gitea": {"memory_mb": 8}}), "ceres:services.gitea.memory_mb", "greater than or equal to 64"),
    ("unknown tier", "dev", with_settings(DEV, tier="staging"), "ceres:tier", "allowed: dev, prod"),
    ("acme without e-mail", "prod", {k: v for k, v in PROD.items() if k != "ceres:tls"}, "ceres:tls.email", "ACME needs the e-mail"),
    ("bad acme e-mail", "prod", with_settings(PROD, tls={"mode": "acme", "email": "ops"}), "ceres:tls.email", "e-mail address"),
    ("unknown tls mode", "dev", with_settings(DEV, tls={"mode": "selfsigned"}), "ceres:tls", "internal"),
    ("prod without hosts", "prod", {k: v for k, v in PROD.items() if k != "ceres:hosts"}, "ceres:hosts", "list the Docker hosts"),
    ("tcp docker endpoint", "dev", with_settings(DEV, hosts=[{"name": "a", "url": "tcp://10.0.0.1:2375", "roles": ["apps"]}]), "ceres:hosts[0].url", "ssh://user@host"),
    ("unknown host role", "dev", with_settings(DEV, hosts=[{"name": "a", "url": "unix:///var/run/docker.sock", "roles": ["db"]}]), "ceres:hosts[0].roles[0]", "'apps' or 'ha'"),
    ("duplicated host name", "prod", with_settings(PROD, hosts=[*PROD_HOSTS, {**PROD_HOSTS[1], "url": "ssh://deploy@node4.example.com"}]), "ceres:hosts[3].name", "unique"),
    ("duplicated docker endpoint", "prod", with_settings(PROD, hosts=[*PROD_HOSTS, {**PROD_HOSTS[1], "name": "node4", "address": "10.0.0.14"}]), "ceres:hosts[3].url", "own Docker endpoint"),
    ("HA host without an address", "prod", with_settings(PROD, hosts=[PROD_HOSTS[0], {k: v for k, v in PROD_HOSTS[1].items() if k != "address"}, PROD_HOSTS[2]]), "ceres:hosts[1].address", "private IPv4"),
    ("two hosts with one address", "prod", with_settings(PROD, hosts=[PROD_HOSTS[0], PROD_HOSTS[1], {**PROD_HOSTS[2], "address": "10.0.0.12"}]), "ceres:hosts[2].address", "node2 has this address"),
    ("a host holding the virtual IP", "prod", with_settings(PROD, hosts=[PROD_HOSTS[0], PROD_HOSTS[1], {**PROD_HOSTS[2], "address": "10.0.0.100"}]), "ceres:hosts[2].address", "must be free"),
    ("virtual IP prefix out of range", "prod", with_settings(PROD, ha={"virtual_ip": "10.0.0.100", "virtual_ip_prefix": 33}), "ceres:ha.virtual_ip_prefix", "32"),
    ("Patroni version not exact", "prod", with_settings(PROD, ha={"virtual_ip": "10.0.0.100", "images": {"patroni": "latest"}}), "ceres:ha.images.patroni", "exact version"),
    ("edge subnet not private", "dev", with_settings(DEV, hosts=[{"name": "a", "url": "unix:///var/run/docker.sock", "roles": ["apps"], "edge_subnet": "8.8.8.0/24"}]), "ceres:hosts[0].edge_subnet", "private IPv4 network"),
    ("edge subnet not a network", "dev", with_settings(DEV, hosts=[{"name": "a", "url": "unix:///var/run/docker.sock", "roles": ["apps"], "edge_subnet": "10.0.0.1/24"}]), "ceres:hosts[0].edge_subnet", "CIDR"),
    ("no apps host", "dev", with_settings(DEV, hosts=[{"name": "a", "url": "unix:///var/run/docker.sock", "roles": ["ha"]}]), "ceres:hosts", "role 'apps'"),
    ("HA with two etcd members", "prod", with_settings(PROD, ha={"virtual_ip": "10.0.0.100", "etcd_members": 2}), "ceres:ha.etcd_members", "at least 3"),
    ("HA with an even etcd", "prod", with_settings(PROD, ha={"virtual_ip": "10.0.0.100", "etcd_members": 4}), "ceres:ha.etcd_members", "odd number"),
    ("HA members over hosts", "prod", with_settings(PROD, ha={"virtual_ip": "10.0.0.100", "postgres_members": 5}), "ceres:ha.postgres_members", "only 3 host(s)"),
    ("HA without a virtual IP", "prod", with_settings(PROD, ha={"virtual_ip": None}), "ceres:ha.virtual_ip", "Keepalived"),
    ("HA with a bad virtual IP", "prod", with_settings(PROD, ha={"virtual_ip": "10.0.0.300"}), "ceres:ha.virtual_ip", "IPv4"),
    ("HA without postgres", "prod", with_settings(PROD, services={"postgres": {"enabled": False}, "mattermost": {"enabled": False}, "postgres_exporter": {"enabled": False}}), "ceres:services.postgres.enabled", "ha.enabled=false"),
    ("service without what it needs", "dev", with_settings(DEV, services={"postgres": {"enabled": False}}), "ceres:services.postgres.enabled", "mattermost cannot run without postgres"),
    ("edge whose endpoint is disabled", "dev", with_settings(DEV, services={"redmine": {"enabled": False}}, integrations={"chat-redmine": True}), "ceres:integrations.chat-redmine", "service redmine is disabled"),
    ("edge a running service needs", "dev", with_settings(DEV, integrations={"db-mattermost": False}), "ceres:integrations.db-mattermost", "mattermost cannot run without it"),
    ("apps with SSO while Keycloak is disabled", "dev", with_settings(DEV, services={"keycloak": {"enabled": False}, "oauth2_proxy": {"enabled": False}}), "ceres:services.keycloak.enabled", "integrations.sso-gitea=false"),
    ("redirect host outside the domain", "dev", with_settings(DEV, sso={"extra_redirect_uris": {"gitea": ["https://gitea.evil.example/user/oauth2/keycloak/callback"]}}), "ceres:sso.extra_redirect_uris.gitea[0]", "outside the stack's domain"),
    ("redirect URL not https", "dev", with_settings(DEV, sso={"extra_redirect_uris": {"gitea": ["http://gitea.ceres.localhost/cb"]}}), "ceres:sso.extra_redirect_uris.gitea[0]", "https://"),
    ("extra redirects for an app without SSO", "dev", with_settings(DEV, sso={"extra_redirect_uris": {"loki": ["https://loki.ceres.localhost/cb"]}}), "ceres:sso.extra_redirect_uris.loki", "not an app that signs in"),
    ("bad admin group", "dev", with_settings(DEV, sso={"admin_group": "Admins!"}), "ceres:sso.admin_group", "lowercase"),
    ("edge that cannot apply", "dev", with_settings(DEV, integrations={"cache-mattermost": True}), "ceres:integrations.cache-mattermost", "Team Edition"),
    ("unknown edge", "dev", with_settings(DEV, integrations={"chat-gita": False}), "ceres:integrations.chat-gita", "did you mean 'chat-gitea'"),
    ("edge switch not a boolean", "dev", with_settings(DEV, integrations={"chat-gitea": "maybe"}), "ceres:integrations.chat-gitea", "valid boolean"),
    ("bad channel name", "dev", with_settings(DEV, chat={"channels": {"alerts": "Alerts Room"}}), "ceres:chat.channels.alerts", "lowercase"),
    ("bad team name", "dev", with_settings(DEV, chat={"team": "-x"}), "ceres:chat.team", "start with a letter"),
    ("bad backup schedule", "dev", with_settings(DEV, backup={"schedule": "daily"}), "ceres:backup.schedule", "cron"),
    ("smtp port out of range", "dev", with_settings(DEV, smtp={"host": "smtp.example.com", "port": 70000, "from_address": "a@example.com"}), "ceres:smtp.port", "65535"),
    ("smtp user without password", "dev", with_settings(DEV, smtp={"host": "smtp.example.com", "port": 587, "from_address": "a@example.com", "username": "ceres", "alert_recipients": ["ops@example.com"]}), "ceres:smtp_password", "--secret"),
    ("smtp without alert recipients", "dev", with_settings(DEV, smtp={"host": "smtp.example.com", "port": 587, "from_address": "a@example.com"}), "ceres:smtp.alert_recipients", "required"),
    ("a secret set in plain text", "dev", with_settings(DEV, smtp_password="hunter2"), "ceres:smtp_password", "must be a secret"),
    ("restic backend CERES has no credentials for", "dev", with_settings(DEV, backup={"repository": "sftp:backup@store:/srv/restic"}), "ceres:backup.repository", "s3:https://<endpoint>/<bucket>"),
    ("s3 repository without the bucket's keys", "dev", with_settings(DEV, backup={"repository": "s3:https://s3.example.com/acme-backups/restic"}), "ceres:backup_s3_secret_key", "pulumi config set --secret backup_s3_secret_key"),
    ("object store without its keys", "prod", with_settings(PROD, backup={"repository": "/srv/backups/ceres", "object_store": STORE}), "ceres:backup_s3_access_key", "point-in-time recovery archives into backup.object_store"),
    ("object store endpoint given as a URL", "prod", with_settings(PROD, backup={"repository": "/srv/b", "object_store": {**STORE, "endpoint": "https://s3.example.com"}}), "ceres:backup.object_store.endpoint", "without scheme"),
    ("restic inside the PostgreSQL archive", "prod", with_settings(PROD, backup={"repository": "s3:https://s3.eu-central-1.amazonaws.com/acme-backups/pgbackrest", "object_store": STORE}), "ceres:backup.repository", "give restic its own prefix"),
    ("restic inside the archive, the store named otherwise", "prod", with_settings(PROD, backup={"repository": "s3:https://s3.amazonaws.com/acme-backups", "object_store": STORE}), "ceres:backup.repository", "give restic its own prefix"),
    ("point-in-time recovery insisted on without an object store", "prod", with_settings(PROD, integrations={"backup-pitr": True}), "ceres:integrations.backup-pitr", "no object store configured"),
    ("point-in-time schedule out of range", "prod", with_settings(PROD, backup={"repository": "/srv/b", "point_in_time": {"diff_every_hours": 0}}), "ceres:backup.point_in_time.diff_every_hours", "greater than or equal to 1"),
]


@pytest.mark.parametrize("what, stack, config, key, fix", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_fails_with_a_message_naming_the_key(what, stack, config, key, fix):
    problems = problems_of(stack, config)
    naming = [p for p in problems if p.startswith(f"{key}:")]
    assert naming, f"no problem names {key}: {problems}"
    assert any(fix in p for p in naming), f"{key}: no hint {fix!r} in {naming}"


def test_every_problem_is_reported_at_once():
    config = with_settings(DEV, domain="https://x", services={"gitea": {"image": "gitea/gitea:latest"}}, chat={"team": "-x"})
    problems = problems_of("dev", config)
    assert {p.split(":", 2)[1] for p in problems} >= {"domain", "services.gitea.image", "chat.team"}


def test_messages_show_the_value_received():
    [problem] = problems_of("dev", with_settings(DEV, services={"gitea": {"image": "gitea/gitea:latest"}}))
    assert "received 'gitea/gitea:latest'" in problem


def test_secrets_never_appear_in_messages():
    config = with_settings(DEV, smtp_password="hunter2-secret", hosts=[{"name": "a", "url": "ssh://deploy:hunter2-secret@h", "roles": ["apps"]}])
    problems = problems_of("dev", config)
    assert problems and not any("hunter2-secret" in p for p in problems)


def test_a_secret_set_as_a_secret_is_accepted():
    config = with_settings(DEV, smtp={"host": "smtp.example.com", "port": 587, "from_address": "a@example.com", "username": "ceres", "alert_recipients": ["ops@example.com"]})
    config["ceres:smtp_password"] = "[secret]"
    assert load_spec("dev", config, {"ceres:smtp_password"}).smtp.username == "ceres"


def test_the_keys_are_asked_for_only_where_something_uses_them():
    # One host: no cluster to archive; a local restic repository: nothing reads the keys.
    config = with_settings(DEV, backup={"object_store": STORE})
    assert load_spec("dev", config).backup.object_store.bucket == "acme-backups"
    off = with_settings(PROD, backup={"repository": "/srv/b", "object_store": STORE}, integrations={"backup-pitr": False})
    assert load_spec("prod", off).backup.object_store is not None


def test_an_object_store_with_its_keys_as_secrets_loads():
    keys = {"ceres:backup_s3_access_key": "[secret]", "ceres:backup_s3_secret_key": "[secret]"}
    config = {**with_settings(PROD, backup={"repository": "s3:https://s3.eu-central-1.amazonaws.com/acme-backups/restic",
                                             "object_store": STORE}), **keys}
    spec = load_spec("prod", config, set(keys))
    assert spec.backup.object_store.bucket == "acme-backups" and spec.backup.point_in_time.full_every_days == 7
    plain = problems_of("prod", config)  # the same keys in plain text are refused, naming each
    assert sum("must be a secret" in p for p in plain) == 2 and not any("[secret]" in p for p in plain)


def test_sso_can_be_turned_off_app_by_app_when_keycloak_is_off():
    logins = ("grafana", "nextcloud", "gitea", "wikijs", "redmine", "mattermost", "portainer")
    config = with_settings(
        DEV,
        services={"keycloak": {"enabled": False}, "oauth2_proxy": {"enabled": False}},
        integrations={f"sso-{app}": False for app in logins},
    )
    assert not load_spec("dev", config).enabled("keycloak")


def test_config_of_other_namespaces_is_ignored():
    assert load_spec("dev", {**DEV, "docker:host": "unix:///x", "aws:region": "eu-west-1"}).domain == "ceres.localhost"
