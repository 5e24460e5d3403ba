"""Nextcloud, its cron container and bootstrap, built under the recording engine."""

from __future__ import annotations

import pulumi
import pytest

from cli.offline import SECRET_MARK
from components.config.chat_relay import RelaySettings, relay_program
from components.config.nextcloud import (
    ADMIN_USERNAME,
    REDIS_CONFIG_NAME,
    REDIS_PASSWORD_VARIABLE,
    ExternalFolder,
    folders_script,
)
from components.services.nextcloud import RELAY_IMAGE, Nextcloud
from components.container import SharedVolume
from tests.support import (
    assert_no_plain_secrets,
    assert_oidc_client,
    assert_production_shape,
    build_with_sso,
    build_with_stores,
    by_name,
    run_components,
    served_without_proxy,
    unwrap,
)


def build(postgres: bool = True, redis: bool = True):
    return build_with_stores(Nextcloud, "nextcloud", postgres=postgres, redis=redis)


def container(run, name: str = "nextcloud"):
    return by_name(run, name, "Container")


def edges(run) -> set[str]:
    return {r.name for r in run.resources if r.type.startswith("ceres:integrations:")}


def test_app_has_the_production_shape_and_a_health_check_on_status_php():
    run, nextcloud = build()
    app = assert_production_shape(run, "nextcloud", image="nextcloud:31.0.8-apache", memory=1024,
                                  networks=["ceres-dev-edge", "ceres-dev-data"])
    check = app.inputs["healthcheck"]
    assert check["tests"] == ["CMD", "curl", "-fsS", "-o", "/dev/null", "-H", "Host: nextcloud.ceres.localhost",
                              "http://localhost:80/status.php"]
    assert check["startPeriod"] == "300s"
    assert nextcloud.url == "https://nextcloud.ceres.localhost" and nextcloud.upstream == "nextcloud:80"


def test_installs_itself_behind_the_proxy_for_its_public_url():
    run, nextcloud = build()
    envs = container(run).inputs["envs"]
    for entry in (f"NEXTCLOUD_ADMIN_USER={ADMIN_USERNAME}", "NEXTCLOUD_TRUSTED_DOMAINS=nextcloud.ceres.localhost",
                  "OVERWRITEPROTOCOL=https", "OVERWRITEHOST=nextcloud.ceres.localhost",
                  "OVERWRITECLIURL=https://nextcloud.ceres.localhost", "APACHE_DISABLE_REWRITE_IP=1",
                  "TRUSTED_PROXIES=10.213.0.2"):
        assert entry in envs
    password = unwrap(by_name(run, "nextcloud-admin-password", "RandomPassword").state["result"])
    assert f"NEXTCLOUD_ADMIN_PASSWORD={password}" in unwrap(container(run).state["envs"])
    assert nextcloud.admin_username == ADMIN_USERNAME and isinstance(nextcloud.admin_password, pulumi.Output)


def test_database_and_cache_edges_with_secret_credentials_and_no_image_redis_variables():
    run, _ = build()
    assert edges(run) == {"db-nextcloud", "cache-nextcloud"}
    envs = container(run).inputs["envs"]
    assert {"POSTGRES_HOST=postgres:5432", "POSTGRES_DB=nextcloud", "POSTGRES_USER=nextcloud"} <= set(envs)
    opened = unwrap(container(run).state["envs"])
    redis_password = unwrap(by_name(run, "redis-nextcloud-password", "RandomPassword").state["result"])
    assert f"{REDIS_PASSWORD_VARIABLE}={redis_password}" in opened
    assert not any(e.startswith("REDIS_HOST") for e in opened), "the image's Redis variables would break ACL logins"
    for step in ("postgres-nextcloud-database",):
        assert by_name(run, step, "Command").urn in container(run).dependencies
    assert container(run, "redis").urn in container(run).dependencies


def test_bootstrap_sets_cron_mode_and_writes_the_redis_config_as_www_data():
    run, _ = build()
    step = by_name(run, "nextcloud-bootstrap", "Command")
    assert step.inputs["create"] == "docker exec -i -u www-data ceres-dev-nextcloud sh -s"
    assert "occ background:cron" in step.inputs["stdin"]
    assert REDIS_CONFIG_NAME in step.inputs["stdin"] and "'dbindex' => 1" in step.inputs["stdin"]
    assert container(run).urn in step.dependencies


def test_cron_container_shares_the_image_and_volume_and_gets_only_the_redis_password():
    run, _ = build()
    app, cron = container(run), container(run, "nextcloud-cron")
    assert cron.inputs["image"] == app.inputs["image"]
    assert cron.inputs["command"] == ["/cron.sh"]
    assert cron.inputs["volumes"] == [v for v in app.inputs["volumes"] if v["containerPath"] == "/var/www/html"]
    assert cron.inputs["name"] == "ceres-dev-nextcloud-cron"
    assert cron.inputs["restart"] == "unless-stopped" and cron.inputs["wait"] is True and cron.inputs["healthcheck"]["tests"]
    assert cron.inputs["memory"] == 1024 and not cron.inputs.get("ports")
    assert cron.inputs["envs"] == [SECRET_MARK]
    assert unwrap(cron.state["envs"])[0].startswith(f"{REDIS_PASSWORD_VARIABLE}=")
    assert {app.urn, by_name(run, "nextcloud-bootstrap", "Command").urn} <= set(cron.dependencies)


def test_without_postgres_or_redis_it_runs_on_sqlite_and_apcu():
    run, _ = build(postgres=False, redis=False)
    assert edges(run) == set()
    envs = container(run).inputs["envs"]
    assert "SQLITE_DATABASE=nextcloud" in envs and not any(e.startswith("POSTGRES_") for e in envs)
    assert [n["name"] for n in container(run).inputs["networksAdvanced"]] == ["ceres-dev-edge"]
    script = by_name(run, "nextcloud-bootstrap", "Command").inputs["stdin"]
    assert f"rm -f /var/www/html/config/{REDIS_CONFIG_NAME}" in script
    assert container(run, "nextcloud-cron").inputs["envs"] == []


def test_no_secret_reaches_a_plain_input():
    run, _ = build()
    assert_no_plain_secrets(run)


# Single sign-on: Keycloak, its realm, Nextcloud with `sso`, and the sso-nextcloud edge between them.

def build_sso():
    return build_with_sso("nextcloud", lambda spec, host: Nextcloud(spec, host, sso=True))


def test_without_sso_there_is_no_provider_step():
    run, nextcloud = build()
    assert nextcloud.oidc is None
    assert not [r for r in run.resources if r.name.startswith("nextcloud-sso") or r.type.startswith("keycloak:")]


def test_the_keycloak_client_allows_exactly_user_oidc_s_callback_at_the_public_url():
    run, made = build_sso()
    assert_oidc_client(run, "nextcloud", [
        "https://nextcloud.ceres.localhost/apps/user_oidc/code",
        "https://nextcloud.ceres.localhost/index.php/apps/user_oidc/code",
    ])
    assert made["nextcloud"].oidc.issuer_url == f"https://keycloak.ceres.localhost/realms/{made['spec'].sso.realm}"


def test_members_of_the_admin_group_hold_the_client_role_nextcloud_provisions_as_admin():
    run, made = build_sso()
    client = by_name(run, "nextcloud-oidc-client", "Client")
    role = by_name(run, "nextcloud-admin-role", "Role")
    assert role.inputs["name"] == "admin" and role.inputs["clientId"] == f"{client.name}-id"
    grant = by_name(run, "nextcloud-admin-role-grant", "GroupRoles")
    admins = by_name(run, "keycloak-admins-group", "Group")
    assert admins.inputs["name"] == made["spec"].sso.admin_group
    assert grant.inputs["groupId"] == f"{admins.name}-id" and grant.inputs["roleIds"] == [f"{role.name}-id"]
    assert grant.inputs["exhaustive"] is False
    claim = by_name(run, "nextcloud-admin-role-claim", "UserClientRoleProtocolMapper")
    assert claim.inputs["claimName"] == "nextcloud_groups" and claim.inputs["clientIdForRoleMappings"] == "nextcloud"
    assert claim.inputs["multivalued"] is True and claim.inputs["addToIdToken"] is True
    edge = by_name(run, "sso-nextcloud", "OidcClientEdge")
    assert {role.parent, grant.parent, claim.parent} == {edge.urn}


def test_the_provider_step_discovers_the_realm_and_provisions_the_admin_group_from_that_claim():
    run, made = build_sso()
    step = by_name(run, "nextcloud-sso", "Command")
    assert step.inputs["create"] == "docker exec -i -u www-data -e CERES_OIDC_CLIENT_SECRET ceres-dev-nextcloud sh -s"
    assert step.inputs["environment"]["CERES_OIDC_CLIENT_SECRET"] == SECRET_MARK
    script = step.inputs["stdin"]
    assert f"--discoveryuri=http://keycloak:8080/realms/{made['spec'].sso.realm}/.well-known/openid-configuration" in script
    assert "--clientid=nextcloud" in script and "--mapping-groups=nextcloud_groups" in script
    assert "--group-whitelist-regex='^admin$'" in script
    assert {by_name(run, "nextcloud-oidc-client", "Client").urn, container(run).urn,
            by_name(run, "nextcloud-bootstrap", "Command").urn,
            by_name(run, "nextcloud-admin-role-grant", "GroupRoles").urn} <= set(step.dependencies)


def test_with_sso_no_secret_reaches_a_plain_input():
    run, _ = build_sso()
    assert_no_plain_secrets(run)


# Chat: the chat-nextcloud edge, the relay container, the webhook registration and the job worker.

def build_chat():
    from components.services.mattermost import Mattermost
    from components.services.postgres import PostgreSQL
    from components.services.redis import Redis

    made: dict = {}

    def program(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("nextcloud", "mattermost"))
        hub = Mattermost(spec, host, postgres=postgres)
        served_without_proxy(hub)
        made["nextcloud"] = Nextcloud(spec, host, postgres=postgres, redis=Redis(spec.services.redis, host, ("nextcloud",)),
                                      chat=hub)
    return run_components(program), made["nextcloud"]


@pytest.fixture(scope="module")
def with_chat():
    return build_chat()


def test_without_chat_there_is_no_edge_relay_or_worker():
    run, nextcloud = build()
    assert nextcloud.chat is None
    assert not [r for r in run.resources if r.name in ("chat-nextcloud", "nextcloud_relay", "nextcloud-chat",
                                                       "nextcloud-webhooks", "nextcloud-relay-secret")]


def test_the_chat_edge_is_under_nextcloud_and_posts_to_the_files_channel(with_chat):
    run, nextcloud = with_chat
    edge = by_name(run, "chat-nextcloud", "ChatWebhookEdge")
    assert edge.parent == by_name(run, "nextcloud", "ceres:services:Nextcloud").urn
    assert nextcloud.chat.channel_name == "files" and nextcloud.chat.username == "Nextcloud"


def test_the_relay_runs_pinned_stateless_unpublished_and_healthchecked_on_the_edge(with_chat):
    run, _ = with_chat
    relay = by_name(run, "nextcloud_relay", "Container")
    assert by_name(run, "nextcloud_relay-image", "RemoteImage").inputs["name"] == RELAY_IMAGE
    assert relay.inputs["restart"] == "unless-stopped" and relay.inputs["wait"] is True
    assert relay.inputs["memory"] == 64 and not relay.inputs["ports"]
    assert relay.inputs["user"] == "65534:65534"
    assert [n["name"] for n in relay.inputs["networksAdvanced"]] == ["ceres-dev-edge"]
    assert relay.inputs["healthcheck"]["tests"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
    assert relay.inputs["volumes"] == []
    assert relay.inputs["command"] == ["python", "/srv/ceres-relay.py"]
    assert relay.parent == by_name(run, "chat-nextcloud", "ChatWebhookEdge").urn


def test_the_relay_gets_its_program_plain_and_the_hook_url_and_secret_only_as_secrets(with_chat):
    run, _ = with_chat
    relay = by_name(run, "nextcloud_relay", "Container")
    uploads = {u["file"]: u["content"] for u in relay.inputs["uploads"]}
    program = uploads["/srv/ceres-relay.py"]
    assert program == relay_program(RelaySettings(public_url="https://nextcloud.ceres.localhost", channel="files"))
    assert uploads["/run/ceres/mattermost-hook-url"] == uploads["/run/ceres/relay-secret"] == SECRET_MARK
    assert not relay.inputs.get("envs"), "no secret in the environment `docker inspect` shows"
    secret = unwrap(by_name(run, "nextcloud-relay-secret", "RandomPassword").state["result"])
    opened = {u["file"]: u["content"] for u in unwrap(relay.state["uploads"])}
    assert opened["/run/ceres/relay-secret"] == secret
    assert opened["/run/ceres/mattermost-hook-url"].startswith("http://mattermost:8065/hooks/")


def test_webhooks_are_registered_in_nextcloud_with_secrets_from_env_after_the_relay_runs(with_chat):
    run, _ = with_chat
    step = by_name(run, "nextcloud-chat", "Command")
    assert step.inputs["create"] == ("docker exec -i -u www-data -e CERES_NEXTCLOUD_ADMIN_PASSWORD "
                                     "-e CERES_NEXTCLOUD_RELAY_SECRET ceres-dev-nextcloud sh -s")
    assert step.inputs["environment"]["CERES_NEXTCLOUD_ADMIN_PASSWORD"] == SECRET_MARK
    assert step.inputs["environment"]["CERES_NEXTCLOUD_RELAY_SECRET"] == SECRET_MARK
    assert "http://nextcloud-relay:8080/nextcloud" in step.inputs["stdin"]
    assert "occ app:enable webhook_listeners" in step.inputs["stdin"]
    assert {container(run).urn, by_name(run, "nextcloud_relay", "Container").urn,
            by_name(run, "nextcloud-bootstrap", "Command").urn} <= set(step.dependencies)


def test_a_dedicated_worker_sends_webhooks_within_seconds(with_chat):
    run, _ = with_chat
    app, worker = container(run), container(run, "nextcloud-webhooks")
    assert worker.inputs["command"] == ["php", "/var/www/html/occ", "background-job:worker",
                                        "OCA\\WebhookListeners\\BackgroundJobs\\WebhookCall"]
    assert worker.inputs["user"] == "www-data" and worker.inputs["image"] == app.inputs["image"]
    assert worker.inputs["volumes"] == [v for v in app.inputs["volumes"] if v["containerPath"] == "/var/www/html"]
    assert worker.inputs["networksAdvanced"][0]["name"] == "ceres-dev-edge", "it reaches the relay"
    assert worker.inputs["restart"] == "unless-stopped" and worker.inputs["wait"] is True
    assert worker.inputs["memory"] == 256 and not worker.inputs.get("ports") and worker.inputs["healthcheck"]["tests"]
    assert by_name(run, "nextcloud-chat", "Command").urn in worker.dependencies


def test_with_chat_no_secret_reaches_a_plain_input(with_chat):
    run, _ = with_chat
    assert_no_plain_secrets(run)


# Files from elsewhere: files-gitea (/Repositories), files-wikijs (/Wiki), files-redmine (/Redmine files).

REPOSITORIES = SharedVolume(name="ceres-dev-repos", path="/srv/repos")


def build_folders(**keywords):
    return build_with_stores(lambda spec, host, **stores: Nextcloud(spec, host, **stores, **keywords), "nextcloud")


def read_only_mounts(resource) -> dict[str, str]:
    return {m["containerPath"]: m["volumeName"] for m in resource.inputs["volumes"] if m.get("readOnly")}


def test_each_folder_volume_is_mounted_read_only_in_the_app_and_its_jobs():
    run, _ = build_folders(repositories=REPOSITORIES, show_projects=True, show_wiki=True,
                           redmine_files="ceres-dev-redmine-files")
    expected = {"/srv/repos": "ceres-dev-repos", "/srv/redmine-files": "ceres-dev-redmine-files"}
    assert read_only_mounts(container(run)) == expected
    assert read_only_mounts(container(run, "nextcloud-cron")) == expected
    writable = [m for m in container(run).inputs["volumes"] if not m.get("readOnly")]
    assert [m["containerPath"] for m in writable] == ["/var/www/html"]


def test_the_folders_step_mounts_the_three_folders_after_the_bootstrap():
    run, nextcloud = build_folders(repositories=REPOSITORIES, show_projects=True, show_wiki=True,
                                   redmine_files="ceres-dev-redmine-files")
    step = by_name(run, "nextcloud-folders", "Command")
    assert step.inputs["create"] == "docker exec -i -u www-data ceres-dev-nextcloud sh -s"
    assert step.inputs["stdin"] == folders_script((
        ExternalFolder("/Repositories", "/srv/repos/files/projects"),
        ExternalFolder("/Wiki", "/srv/repos/files/wiki"),
        ExternalFolder("/Redmine files", "/srv/redmine-files"),
    ))
    assert {container(run).urn, by_name(run, "nextcloud-bootstrap", "Command").urn} <= set(step.dependencies)
    assert nextcloud.folders is not None


@pytest.mark.parametrize("keywords, folder, mounted", [
    ({"repositories": REPOSITORIES, "show_projects": True},
     ExternalFolder("/Repositories", "/srv/repos/files/projects"), {"/srv/repos"}),
    ({"repositories": REPOSITORIES, "show_wiki": True}, ExternalFolder("/Wiki", "/srv/repos/files/wiki"), {"/srv/repos"}),
    # The repositories volume stays out when no folder reads it.
    ({"repositories": REPOSITORIES, "redmine_files": "ceres-dev-redmine-files"},
     ExternalFolder("/Redmine files", "/srv/redmine-files"), {"/srv/redmine-files"}),
])
def test_each_edge_adds_only_its_own_folder_and_volume(keywords, folder, mounted):
    run, _ = build_folders(**keywords)
    assert by_name(run, "nextcloud-folders", "Command").inputs["stdin"] == folders_script((folder,))
    assert set(read_only_mounts(container(run))) == mounted


def test_without_folders_there_is_no_step_and_no_extra_mount():
    run, nextcloud = build()
    assert nextcloud.folders is None
    assert not [r for r in run.resources if r.name == "nextcloud-folders"]
    assert read_only_mounts(container(run)) == {} and read_only_mounts(container(run, "nextcloud-cron")) == {}


def test_project_and_wiki_folders_need_the_repositories_volume():
    with pytest.raises(ValueError, match="repositories"):
        build_folders(show_projects=True)


def test_redmines_attachments_volume_is_mounted_read_only_once_it_exists():
    from components.services.redmine import Redmine

    def program(spec, host):
        redmine = Redmine(spec, host, postgres=None)
        Nextcloud(spec, host, redmine_files=redmine.files_volume)

    run = run_components(program)
    assert read_only_mounts(container(run))["/srv/redmine-files"] == "ceres-dev-redmine-files"
    volume = next(r for r in run.resources if r.type.endswith("Volume") and r.name == "redmine-files")
    assert volume.urn in container(run).dependencies
