"""Nextcloud's folders from elsewhere (files-gitea, files-wikijs, files-redmine), run with `sh` (dash)
against a stub `php` that runs the real `php -r` snippets (Debian `php-cli`) and answers `occ`
files_external commands as Nextcloud 31 does (apps/files_external/lib/Command): `create
--output=json` prints the new id, `list --output=json` prints mount_id, mount_point, storage,
authentication_type, configuration, options (PHP's `[]` when empty), applicable_users and
applicable_groups; `config`/`option` set one key (`option` JSON-decodes the value); `applicable
--remove-all` makes the mount global; the commands exist only once the app is enabled. The stub keeps
its mounts in a file, so runs can be repeated to prove idempotence.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from components.config.nextcloud import ExternalFolder, folders_script
from tests.components.config.stubs import path_with, python_stub, require

TIMEOUT = 30
LOCAL = "\\OC\\Files\\Storage\\Local"
FOLDERS = (
    ExternalFolder("/Projects", "/srv/repos/files/projects"),
    ExternalFolder("/Wiki", "/srv/repos/files/wiki"),
    ExternalFolder("/Redmine files", "/srv/redmine-files"),
)

STUB_PHP = textwrap.dedent("""\
    import json, os, sys
    if sys.argv[1] == "-r":
        os.execv(os.environ["REAL_PHP"], ["php", *sys.argv[1:]])
    root = os.environ["STUB_ROOT"]
    def load(name, default):
        path = os.path.join(root, name)
        return json.load(open(path)) if os.path.exists(path) else default
    def save(name, value):
        json.dump(value, open(os.path.join(root, name), "w"))
    assert sys.argv[1] == "/var/www/html/occ", sys.argv
    command = sys.argv[2:]
    calls = load("occ-calls.json", [])
    calls.append(command)
    save("occ-calls.json", calls)
    state = load("state.json", {"apps": [], "mounts": [], "next": 1})
    def fail(message, status=1):
        sys.stderr.write(message + "\\n")
        sys.exit(status)
    def mount(ident):
        for m in state["mounts"]:
            if str(m["mount_id"]) == ident:
                return m
        fail(f'Mount with id "{ident} not found', 404)
    name = command[0]
    if name == "app:enable":
        state["apps"] = sorted(set(state["apps"]) | {command[1]})
    elif not name.startswith("files_external:") or "files_external" not in state["apps"]:
        fail(f'Command "{name}" is not defined.')
    elif os.environ.get("STUB_FAIL_LIST") and name == "files_external:list":
        fail("list failed on purpose")
    elif command == ["files_external:list", "--output=json"]:
        print(json.dumps([{**m, "options": m["options"] or []} for m in state["mounts"]]))
    elif name == "files_external:create":
        options, rest = [a for a in command[1:] if a.startswith("--")], [a for a in command[1:] if not a.startswith("--")]
        assert options == ["--output=json"], options
        point, backend, auth, flag, setting = rest
        if (backend, auth, flag) != ("local", "null::null", "-c") or not setting.startswith("datadir="):
            fail(f"unexpected create {command}")
        state["mounts"].append({"mount_id": state["next"], "mount_point": point, "storage": os.environ["LOCAL"],
                                "authentication_type": "null::null",
                                "configuration": {"datadir": setting.split("=", 1)[1]}, "options": {},
                                "applicable_users": [], "applicable_groups": []})
        print(state["next"])
        state["next"] += 1
    elif name == "files_external:config" and len(command) == 4:
        mount(command[1])["configuration"][command[2]] = command[3]
    elif name == "files_external:option" and len(command) == 4:
        mount(command[1])["options"][command[2]] = json.loads(command[3])
    elif name == "files_external:applicable" and command[2:] == ["--remove-all"]:
        m = mount(command[1])
        m["applicable_users"], m["applicable_groups"] = [], []
        print(json.dumps({"users": [], "groups": []}))
    else:
        fail(f"unexpected occ {command}")
    save("state.json", state)
""")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    python_stub(tmp_path, "php", STUB_PHP)
    return tmp_path


def run(root: Path, folders=FOLDERS, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": path_with(root), "STUB_ROOT": str(root), "LOCAL": LOCAL,
                   "REAL_PHP": require("php", "apt-get install -y php-cli"), **env}
    return subprocess.run(["dash", "-s"], input=folders_script(folders), env=environment,
                          capture_output=True, text=True, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"script failed ({result.returncode}):\n{result.stderr}"
    return result


def mounts(root: Path) -> dict[str, dict]:
    return {m["mount_point"]: m for m in json.loads((root / "state.json").read_text())["mounts"]}


def calls(root: Path) -> list[list[str]]:
    return json.loads((root / "occ-calls.json").read_text())


def changes(root: Path) -> list[list[str]]:
    return [c for c in calls(root) if c[0] != "files_external:list"]


def seed(root: Path, *existing: dict) -> None:
    base = {"storage": LOCAL, "authentication_type": "null::null", "options": {},
            "applicable_users": [], "applicable_groups": []}
    state = {"apps": ["files_external"], "mounts": [{**base, **m} for m in existing], "next": 10}
    (root / "state.json").write_text(json.dumps(state))


def test_script_is_valid_sh():
    assert subprocess.run(["dash", "-n"], input=folders_script(FOLDERS), text=True, timeout=TIMEOUT).returncode == 0


def test_first_run_enables_the_app_and_mounts_each_folder_read_only_for_everyone(root):
    result = ok(run(root))
    made = mounts(root)
    assert {point: m["configuration"]["datadir"] for point, m in made.items()} == {
        "/Projects": "/srv/repos/files/projects", "/Wiki": "/srv/repos/files/wiki", "/Redmine files": "/srv/redmine-files"}
    for m in made.values():
        assert m["options"] == {"readonly": True}
        assert m["applicable_users"] == [] and m["applicable_groups"] == [], "an admin mount for every user"
    assert calls(root)[0] == ["app:enable", "files_external"]
    assert ["files_external:create", "--output=json", "/Redmine files", "local", "null::null", "-c",
            "datadir=/srv/redmine-files"] in calls(root), "the mount point with a space is one argument"
    assert result.stdout == "mounted\n"


def test_second_run_lists_and_changes_nothing(root):
    ok(run(root))
    before = mounts(root)
    first = len(calls(root))
    ok(run(root))
    assert mounts(root) == before
    assert [c[0] for c in calls(root)[first:]] == ["app:enable"] + ["files_external:list"] * 3


def test_a_mount_whose_folder_moved_is_fixed_in_place(root):
    seed(root, {"mount_id": 4, "mount_point": "/Projects", "configuration": {"datadir": "/old/projects"},
                "options": {"readonly": True}})
    ok(run(root, FOLDERS[:1]))
    assert mounts(root)["/Projects"]["configuration"]["datadir"] == "/srv/repos/files/projects"
    assert mounts(root)["/Projects"]["mount_id"] == 4, "the same mount, not a new one"
    assert changes(root) == [["app:enable", "files_external"],
                             ["files_external:config", "4", "datadir", "/srv/repos/files/projects"]]


def test_a_writable_or_restricted_mount_is_made_read_only_and_global_again(root):
    seed(root, {"mount_id": 5, "mount_point": "/Wiki", "configuration": {"datadir": "/srv/repos/files/wiki/"},
                "options": {"readonly": False, "previews": True}, "applicable_groups": ["admin"]})
    ok(run(root, FOLDERS[1:2]))
    wiki = mounts(root)["/Wiki"]
    assert wiki["options"] == {"readonly": True, "previews": True}
    assert wiki["applicable_groups"] == []
    assert ["files_external:config", "5", "datadir", "/srv/repos/files/wiki"] not in calls(root), \
        "a trailing slash is the same folder"


def test_mounts_it_did_not_make_are_left_alone(root):
    seed(root, {"mount_id": 2, "mount_point": "/Scans", "configuration": {"datadir": "/mnt/scans"}})
    ok(run(root))
    scans = mounts(root)["/Scans"]
    assert scans["configuration"] == {"datadir": "/mnt/scans"} and scans["options"] == {}
    assert not [c for c in changes(root) if c[1:2] == ["2"]], "no command names its id"


def test_a_folder_taken_by_another_backend_stops_it(root):
    seed(root, {"mount_id": 3, "mount_point": "/Projects", "storage": "\\OCA\\Files_External\\Lib\\Storage\\SMB",
                "configuration": {"host": "nas"}})
    result = run(root)
    assert result.returncode != 0 and "/Projects is mounted from another backend" in result.stderr
    assert [c for c in changes(root) if c[0] != "app:enable"] == []


def test_a_failed_listing_stops_it_before_anything_is_created(root):
    result = run(root, STUB_FAIL_LIST="1")
    assert result.returncode != 0
    assert [c for c in changes(root) if c[0] == "files_external:create"] == []


@pytest.mark.parametrize("point, datadir", [
    ("Projects", "/srv/x"), ("/Pro'jects", "/srv/x"), ("/Projects/sub", "/srv/x"),
    ("/Projects", "srv/x"), ("/Projects", "/srv/../etc"), ("/Projects", "/srv/x y"),
])
def test_folders_refuse_values_the_script_does_not_quote_or_nextcloud_would_misread(point, datadir):
    with pytest.raises(ValueError):
        ExternalFolder(point, datadir)


def test_the_script_needs_distinct_folders():
    with pytest.raises(ValueError):
        folders_script(())
    with pytest.raises(ValueError):
        folders_script((FOLDERS[0], ExternalFolder("/Projects", "/elsewhere")))
