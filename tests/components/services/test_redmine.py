"""Redmine as the recording engine sees it, with its PostgreSQL edge and with the SQLite fallback,
signing in through Keycloak (sso-redmine) and posting task changes to the chat (chat-redmine)."""

from __future__ import annotations

import pytest
import pulumi
from pulumi.runtime.sync_await import _sync_await

from cli.offline import SECRET_MARK
from components.config import redmine as redmine_config
from components.integrations.oidc import OidcClientEdge
from components.services.keycloak import Keycloak
from components.services.mattermost import Mattermost
from components.services.postgres import PostgreSQL
from components.container import SharedVolume
from components.services.redmine import Redmine
from stacks.tiers import BASE
from tests.support import (
    assert_no_plain_secrets,
    assert_oidc_client,
    assert_production_shape,
    build_on_postgres_or_sqlite,
    by_name,
    of_type,
    run_components,
    served_without_proxy,
)


def build_run(with_postgres: bool):
    return build_on_postgres_or_sqlite(Redmine, "redmine", with_postgres)


@pytest.fixture(scope="module")
def with_postgres():
    return build_run(with_postgres=True)


@pytest.fixture(scope="module")
def with_sqlite():
    return build_run(with_postgres=False)


def container(run):
    return by_name(run, "redmine", "Container")


def test_runs_the_pinned_image_in_the_production_shape(with_postgres):
    run, redmine = with_postgres
    inputs = assert_production_shape(run, "redmine", image=BASE["services"]["redmine"]["image"],
                                     memory=BASE["services"]["redmine"]["memory_mb"]).inputs
    # The image has wget, not curl.
    assert inputs["healthcheck"]["tests"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/login"]
    assert redmine.url == "https://redmine.ceres.localhost"
    assert redmine.upstream == "redmine:3000"


def test_postgres_credentials_reach_it_through_the_db_edge(with_postgres):
    run, _ = with_postgres
    envs = container(run).inputs["envs"]
    for entry in ("REDMINE_DB_POSTGRES=postgres", "REDMINE_DB_PORT=5432", "REDMINE_DB_DATABASE=redmine",
                  "REDMINE_DB_USERNAME=redmine"):
        assert entry in envs
    assert envs.count(SECRET_MARK) == 2  # the database password and the secret key base
    edge = by_name(run, "db-redmine", "DatabaseEdge")
    assert edge.parent == by_name(run, "redmine", "ceres:services:Redmine").urn
    assert by_name(run, "postgres-redmine-database", "Command").urn in container(run).dependencies
    networks = {n["name"] for n in container(run).inputs["networksAdvanced"]}
    assert networks == {"ceres-dev-edge", "ceres-dev-data"}


def test_without_postgres_it_keeps_sqlite_on_a_volume_and_stays_off_the_data_network(with_sqlite):
    run, _ = with_sqlite
    inputs = container(run).inputs
    assert not any(e.startswith("REDMINE_DB_") for e in inputs["envs"] if e != SECRET_MARK)
    mounts = {m["containerPath"]: m["volumeName"] for m in inputs["volumes"]}
    assert mounts == {
        "/usr/src/redmine/files": "ceres-dev-redmine-files",
        "/usr/src/redmine/sqlite": "ceres-dev-redmine-sqlite",
    }
    assert [n["name"] for n in inputs["networksAdvanced"]] == ["ceres-dev-edge"]
    assert not [r for r in run.resources if r.type.endswith("DatabaseEdge")]


def test_files_live_on_a_named_volume(with_postgres):
    run, _ = with_postgres
    mounts = {m["containerPath"]: m["volumeName"] for m in container(run).inputs["volumes"]}
    assert mounts == {"/usr/src/redmine/files": "ceres-dev-redmine-files"}


@pytest.mark.parametrize("variant", ["with_postgres", "with_sqlite"])
def test_no_secret_reaches_any_input_in_plain_text(variant, request):
    run, _ = request.getfixturevalue(variant)
    assert_no_plain_secrets(run)


def test_bootstrap_runs_as_redmine_after_the_container_with_secrets_from_env(with_postgres):
    run, _ = with_postgres
    step = by_name(run, "redmine-bootstrap", "Command")
    assert step.inputs["create"] == (
        "docker exec -i -u redmine -e REDMINE_ADMIN_PASSWORD -e REDMINE_SYS_API_KEY ceres-dev-redmine sh -s"
    )
    assert step.inputs["environment"]["REDMINE_ADMIN_PASSWORD"] == SECRET_MARK
    assert step.inputs["environment"]["REDMINE_SYS_API_KEY"] == SECRET_MARK
    assert container(run).urn in step.dependencies
    assert "stdout" in step.secret_outputs
    assert "'host_name' => 'redmine.ceres.localhost'" in step.inputs["stdin"]


def test_exposes_its_credentials_as_secrets(with_postgres):
    _, redmine = with_postgres
    for secret in (redmine.admin_password, redmine.api_key, redmine.sys_api_key):
        assert _sync_await(secret.is_secret())


# --- single sign-on (sso-redmine) ------------------------------------------------------------------

ISSUER = "https://keycloak.ceres.localhost/realms/ceres"
INTERNAL_ISSUER = "http://keycloak:8080/realms/ceres"


def build_with_sso(directory, **settings):
    """Keycloak with its realm, Redmine signing in through it, and the edge between them, built in
    `directory` (the program writes the image's build context under the working directory)."""
    services: dict[str, Redmine] = {}

    def program(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("redmine",))
        keycloak = Keycloak(spec, host, postgres=None)
        services["redmine"] = Redmine(spec, host, postgres=postgres, sso=True)
        keycloak.open_realm(spec, reachable_after=[])
        OidcClientEdge(services["redmine"], keycloak)

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        run = run_components(program, **settings)
    return run, services["redmine"]


@pytest.fixture(scope="module")
def sso_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("redmine-sso")


@pytest.fixture(scope="module")
def with_sso(sso_dir):
    return build_with_sso(sso_dir)


def test_without_the_edge_it_runs_the_pinned_image_as_is(with_postgres):
    run, redmine = with_postgres
    assert redmine.oidc is None
    assert not [r for r in run.resources if r.type.endswith(":Image")]
    assert "REDMINE_PLUGINS_MIGRATE=1" not in container(run).inputs["envs"]


def test_the_client_redirects_exactly_to_the_plugins_callback(with_sso):
    run, _ = with_sso
    assert_oidc_client(run, "redmine", ["https://redmine.ceres.localhost/oauth2callback"])


def test_it_runs_the_derived_image_built_from_the_rendered_dockerfile(with_sso, sso_dir):
    run, _ = with_sso
    image = by_name(run, "redmine-plugins-image", "docker:index/image:Image")
    derived = redmine_config.DerivedImage(base_image=BASE["services"]["redmine"]["image"],
                                          plugins=(redmine_config.OAUTH,))
    assert image.inputs["imageName"] == f"ceres-dev-redmine:{derived.tag()}"
    assert image.inputs["skipPush"] is True, "built where it runs, no registry"
    assert image.inputs["build"] == {"context": ".ceres/build/dev/redmine"}
    assert image.parent == by_name(run, "redmine", "ceres:services:Redmine").urn
    written = (sso_dir / ".ceres/build/dev/redmine/Dockerfile").read_text()
    assert written == redmine_config.dockerfile(derived)
    assert f"FROM {BASE['services']['redmine']['image']}\n" in written
    # The container runs that image, once it is built, instead of pulling the stock one.
    redmine = container(run)
    assert redmine.inputs["image"] == image.inputs["imageName"]
    assert image.urn in redmine.dependencies
    assert not [r for r in run.resources if r.name == "redmine-image"]
    assert "REDMINE_PLUGINS_MIGRATE=1" in redmine.inputs["envs"]


def test_the_plugin_is_configured_in_the_container_after_the_client(with_sso):
    run, _ = with_sso
    step = by_name(run, "redmine-sso", "Command")
    assert step.inputs["create"] == "docker exec -i -u redmine -e CERES_OIDC_CLIENT_SECRET ceres-dev-redmine sh -s"
    assert step.inputs["environment"]["CERES_OIDC_CLIENT_SECRET"] == SECRET_MARK
    assert container(run).urn in step.dependencies
    assert by_name(run, "redmine-oidc-client", "Client").urn in step.dependencies
    assert step.parent == by_name(run, "redmine", "ceres:services:Redmine").urn
    script = step.inputs["stdin"]
    # The browser goes to the public issuer; Redmine's own calls stay on the Docker network.
    assert f"'custom_auth_endpoint' => '{ISSUER}/protocol/openid-connect/auth'" in script
    assert f"'custom_token_endpoint' => '{INTERNAL_ISSUER}/protocol/openid-connect/token'" in script
    assert f"'custom_profile_endpoint' => '{INTERNAL_ISSUER}/protocol/openid-connect/userinfo'" in script
    assert "'validate_user_roles' => 'redmine_roles'" in script


def test_the_admin_group_grants_redmines_admin_role_through_a_roles_claim(with_sso):
    run, _ = with_sso
    client_id = "redmine-oidc-client-id"  # the mock's id for the Keycloak client
    roles = {r.inputs["name"]: r for r in of_type(run, "keycloak:index/role:Role")}
    assert set(roles) == {"admin", "user"}
    assert all(r.inputs["clientId"] == client_id for r in roles.values()), "client roles of the redmine client"
    grants = {g.name: g.inputs for g in of_type(run, "GroupRoles")}
    assert grants["redmine-admin-group-role"]["groupId"] == "keycloak-admins-group-id"
    assert grants["redmine-admin-group-role"]["roleIds"] == ["redmine-admin-role-id"]
    assert grants["redmine-user-group-role"]["groupId"] == "keycloak-users-group-id"
    assert all(g["exhaustive"] is False for g in grants.values()), "other apps' roles on the same groups stay"
    mapper = by_name(run, "redmine-roles-claim", "UserClientRoleProtocolMapper").inputs
    assert mapper["claimName"] == "redmine_roles" and mapper["clientIdForRoleMappings"] == "redmine"
    assert mapper["multivalued"] is True and mapper["addToUserinfo"] is True, "the plugin reads userinfo"
    provider = by_name(run, "keycloak-admin", "keycloak").urn
    edge = by_name(run, "sso-redmine", "OidcClientEdge").urn
    for resource in [*roles.values(), *of_type(run, "GroupRoles"), by_name(run, "redmine-roles-claim")]:
        assert resource.provider == provider and resource.parent == edge, resource.name


def test_the_admin_group_follows_the_spec(sso_dir):
    run, _ = build_with_sso(sso_dir, sso={"admin_group": "ops"})
    assert by_name(run, "keycloak-admins-group", "Group").inputs["name"] == "ops"
    assert by_name(run, "redmine-admin-group-role", "GroupRoles").inputs["groupId"] == "keycloak-admins-group-id"


def test_the_client_secret_is_secret_everywhere(with_sso):
    run, _ = with_sso
    assert_no_plain_secrets(run)


# --- task changes to the chat (chat-redmine) ---------------------------------------------------------

def build_with_chat(directory, sso: bool = False):
    """Redmine posting to the Mattermost hub (and signing in through Keycloak when `sso`)."""
    services: dict[str, Redmine] = {}

    def program(spec, host):
        postgres = PostgreSQL(spec.services.postgres, host, ("redmine", "mattermost"))
        hub = Mattermost(spec, host, postgres=postgres)
        served_without_proxy(hub)
        services["redmine"] = Redmine(spec, host, postgres=postgres, sso=sso, chat=hub)
        if sso:
            keycloak = Keycloak(spec, host, postgres=None)
            keycloak.open_realm(spec, reachable_after=[])
            OidcClientEdge(services["redmine"], keycloak)

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        run = run_components(program)
    return run, services["redmine"]


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("redmine-chat")


@pytest.fixture(scope="module")
def with_chat(chat_dir):
    return build_with_chat(chat_dir)


def test_without_the_chat_edge_there_is_no_messenger(with_postgres, with_sso, sso_dir):
    for run, redmine in (with_postgres, with_sso):
        assert redmine.chat is None
        assert not of_type(run, "ChatWebhookEdge")
        assert not [r for r in run.resources if r.name == "redmine-chat"]
    assert "redmine_messenger" not in (sso_dir / ".ceres/build/dev/redmine/Dockerfile").read_text()


def test_the_chat_edge_is_under_redmine_and_posts_to_the_projects_channel(with_chat):
    run, redmine = with_chat
    edge = by_name(run, "chat-redmine", "ChatWebhookEdge")
    assert edge.parent == by_name(run, "redmine", "ceres:services:Redmine").urn
    assert redmine.chat.channel_name == "projects" and redmine.chat.username == "Redmine"


def test_with_the_chat_it_runs_an_image_with_the_messenger_plugin(with_chat, chat_dir):
    run, _ = with_chat
    image = by_name(run, "redmine-plugins-image", "docker:index/image:Image")
    derived = redmine_config.DerivedImage(base_image=BASE["services"]["redmine"]["image"],
                                          plugins=(redmine_config.MESSENGER,))
    assert image.inputs["imageName"] == f"ceres-dev-redmine:{derived.tag()}"
    assert (chat_dir / ".ceres/build/dev/redmine/Dockerfile").read_text() == redmine_config.dockerfile(derived)
    assert container(run).inputs["image"] == image.inputs["imageName"]
    # The plugin has its own table (project-level settings): its migrations run at start.
    assert "REDMINE_PLUGINS_MIGRATE=1" in container(run).inputs["envs"]


def test_with_sign_on_and_chat_one_image_carries_both_plugins(tmp_path):
    run, _ = build_with_chat(tmp_path, sso=True)
    derived = redmine_config.DerivedImage(base_image=BASE["services"]["redmine"]["image"],
                                          plugins=(redmine_config.OAUTH, redmine_config.MESSENGER))
    assert by_name(run, "redmine-plugins-image", "Image").inputs["imageName"] == f"ceres-dev-redmine:{derived.tag()}"
    assert [r.name for r in run.resources if r.type.endswith(":Image")] == ["redmine-plugins-image"]
    assert container(run).inputs["envs"].count("REDMINE_PLUGINS_MIGRATE=1") == 1
    assert_no_plain_secrets(run)


def test_the_messenger_is_configured_in_the_container_with_the_hook_url_from_env(with_chat):
    run, _ = with_chat
    step = by_name(run, "redmine-chat", "Command")
    assert step.inputs["create"] == "docker exec -i -u redmine -e CERES_CHAT_HOOK_URL ceres-dev-redmine sh -s"
    assert step.inputs["environment"]["CERES_CHAT_HOOK_URL"] == SECRET_MARK
    assert step.parent == by_name(run, "chat-redmine", "ChatWebhookEdge").urn
    assert container(run).urn in step.dependencies
    script = step.inputs["stdin"]
    assert script == redmine_config.messenger_script(redmine_config.MessengerSettings("projects", "Redmine"))
    assert "hooks/" not in script


def test_with_the_chat_no_secret_is_plain(with_chat):
    run, _ = with_chat
    assert_no_plain_secrets(run)


# --- commits (commits-redmine) and the wiki link (wiki-redmine) ----------------------------------------

REPOSITORIES = SharedVolume(name="ceres-dev-repos", path="/srv/repos")


def build_linked():
    """Redmine with the repo-sync volume, its two settings steps under stand-ins for the edges."""
    made: dict = {}

    def program(spec, host):
        redmine = Redmine(spec, host, postgres=None, repositories=REPOSITORIES)
        made["commits"] = redmine.link_commits(pulumi.ComponentResource("test:edge:Commits", "commits-redmine",
                                                                        opts=pulumi.ResourceOptions(parent=redmine)))
        made["wiki"] = redmine.link_wiki(pulumi.ComponentResource("test:edge:Wiki", "wiki-redmine",
                                                                  opts=pulumi.ResourceOptions(parent=redmine)),
                                         spec.public_url("wikijs"))
        made["redmine"] = redmine

    return run_components(program), made


@pytest.fixture(scope="module")
def linked():
    return build_linked()


def test_the_repositories_volume_is_mounted_read_only_where_the_worker_has_it(linked):
    run, _ = linked
    mounts = {m["containerPath"]: m for m in container(run).inputs["volumes"]}
    assert mounts["/srv/repos"] == {"containerPath": "/srv/repos", "volumeName": "ceres-dev-repos", "readOnly": True}
    assert not mounts["/usr/src/redmine/files"].get("readOnly"), "its own volumes stay writable"
    # The derived image is not needed for this: the stock one runs.
    assert not [r for r in run.resources if r.type.endswith(":Image")]


@pytest.mark.parametrize("step, edge", [("redmine-commits", "commits-redmine"), ("redmine-wiki", "wiki-redmine")])
def test_each_settings_step_runs_under_its_edge_after_the_bootstrap(linked, step, edge):
    run, _ = linked
    command = by_name(run, step, "Command")
    assert command.inputs["create"] == "docker exec -i -u redmine ceres-dev-redmine sh -s"
    assert command.parent == by_name(run, edge).urn
    assert {container(run).urn, by_name(run, "redmine-bootstrap", "Command").urn} <= set(command.dependencies)


def test_the_steps_run_the_rendered_scripts(linked):
    run, _ = linked
    assert by_name(run, "redmine-commits", "Command").inputs["stdin"] == \
        redmine_config.commits_script(redmine_config.CommitLinks())
    wiki = by_name(run, "redmine-wiki", "Command").inputs["stdin"]
    assert wiki == redmine_config.wiki_script(redmine_config.WikiLinks(wiki_url="https://wikijs.ceres.localhost"))
    assert "'https://wikijs.ceres.localhost/%project_identifier%'" in wiki


def test_commit_links_need_the_repositories_volume():
    with pytest.raises(ValueError, match="repositories"):
        run_components(lambda spec, host: Redmine(spec, host, postgres=None).link_commits(
            pulumi.ComponentResource("test:edge:Commits", "commits-redmine")))


def test_files_volume_names_the_attachments_volume_once_the_container_exists(linked):
    _, made = linked
    assert _sync_await(made["redmine"].files_volume.future()) == "ceres-dev-redmine-files"


def test_with_the_links_no_secret_is_plain(linked):
    run, _ = linked
    assert_no_plain_secrets(run)
