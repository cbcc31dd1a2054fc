"""Datalake users: createuser/deleteuser/listusers, validation, argon2 hashes, both through serve and direct."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.errors import CairnError
from cairn.serve.users import Authenticator, User, create_user, delete_user, hash_password, list_users, verify_password
from support.serve import C1, C2, shared_server

CAIRN = str(Path(sys.executable).with_name("cairn"))


def test_password_hash_is_argon2id_and_verifies():
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
    assert not verify_password("", "x") and not verify_password("not-a-hash", "x")


def test_direct_embedded_users(datalake, config):
    user = create_user(datalake, config, "staff1", "long-enough", [C1, C1], ["OrgB"])
    assert user.course_ids == (C1,) and user.org_ids == ("OrgB",)
    stored = {u.name: u for u in list_users(datalake)}
    assert stored["staff1"].password_hash.startswith("$argon2id$")
    assert verify_password(stored["staff1"].password_hash, "long-enough")
    with pytest.raises(CairnError, match="already exists"):
        create_user(datalake, config, "staff1", "long-enough", [C2])
    create_user(datalake, config, "staff1", "long-enough", [C2], replace=True)
    assert {u.name: u for u in list_users(datalake)}["staff1"].course_ids == (C2,)
    delete_user(datalake, config, "staff1")
    assert "staff1" not in {u.name for u in list_users(datalake)}
    with pytest.raises(CairnError, match="no user"):
        delete_user(datalake, config, "staff1")


@pytest.mark.parametrize("name, password, courses, orgs, admin, message", [
    ("bad name", "long-enough", [C1], [], False, "not a valid user name"),
    ("x' OR 1=1", "long-enough", [C1], [], False, "not a valid user name"),
    ("default", "long-enough", [C1], [], False, "reserved"),
    ("cairn", "long-enough", [C1], [], False, "reserved"),
    ("ok", "short", [C1], [], False, "at least 8"),
    ("ok", "long-enough", ["not a course"], [], False, "not an Open edX course id"),
    ("ok", "long-enough", ["course-v1:A+B+C'); DROP TABLE x; --"], [], False, "not an Open edX course id"),
    ("ok", "long-enough", [], ["Org B"], False, "not a valid organisation"),
    ("ok", "long-enough", [], ["x'y"], False, "not a valid organisation"),
    ("ok", "long-enough", [], [], False, "at least one --course-id"),
    ("ok", "long-enough", [C1], [], True, "do not combine --admin"),
])
def test_invalid_input_is_refused(datalake, config, name, password, courses, orgs, admin, message):
    with pytest.raises(CairnError, match=message):
        create_user(datalake, config, name, password, courses, orgs, admin=admin)
    assert list_users(datalake) == []


def test_old_style_course_keys_are_accepted(datalake, config):
    user = create_user(datalake, config, "legacy", "long-enough", ["edX/DemoX/Demo_Course"])
    assert user.course_ids == ("edX/DemoX/Demo_Course",)


def test_authenticator_caches_and_follows_changes():
    accounts = [User("u1", hash_password("pw-one-111"), False, (C1,), ())]
    loads = []

    def load():
        loads.append(1)
        return list(accounts)

    auth = Authenticator(load, ttl=60)
    assert auth.authenticate("u1", "pw-one-111").course_ids == (C1,)
    assert auth.authenticate("u1", "pw-one-111") is not None
    assert auth.authenticate("u1", "nope") is None
    assert auth.authenticate("ghost", "pw-one-111") is None
    assert len(loads) == 1
    accounts[0] = User("u1", hash_password("pw-two-222"), False, (C2,), ())
    auth.invalidate()
    assert auth.authenticate("u1", "pw-one-111") is None
    assert auth.authenticate("u1", "pw-two-222").course_ids == (C2,)


def test_cli_through_a_running_server():
    served = shared_server()
    done = served.cairn("createuser", "cli_user", "--password-stdin", "--course-id", C1, "--org-id", "OrgB",
                        input="from-stdin-pw\n")
    assert "user cli_user created: course course-v1:OrgA+C1+2024, org OrgB" in done.stdout
    listed = json.loads(served.cairn("listusers", "--json").stdout)
    mine = next(u for u in listed if u["name"] == "cli_user")
    assert mine == {"name": "cli_user", "admin": False, "course_ids": [C1], "org_ids": ["OrgB"]}
    assert "password" not in json.dumps(listed)
    client = served.client("cli_user", "from-stdin-pw")
    try:
        assert client.command("SELECT 1") == 1
    finally:
        client.close()
    bad = served.cairn("createuser", "x2", "--password", "long-enough", "--course-id", "nope", check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("Error: 'nope' is not an Open edX course id")
    assert "Traceback" not in bad.stderr
    status = json.loads(served.cairn("status", "--json").stdout)
    section = next(x for x in status["sections"] if x["title"] == "datalake users")
    assert {"user": "cli_user", "scope": f"course {C1}, org OrgB"} in section["rows"]
    assert "argon2" not in json.dumps(status)
    served.cairn("deleteuser", "cli_user")
    assert "cli_user" not in served.cairn("listusers").stdout


def test_cli_embedded_without_server(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CAIRN_DATA_DIR": str(tmp_path / "data")}
    run = lambda *a, **k: subprocess.run([CAIRN, *a], env=env, capture_output=True, text=True, timeout=300, **k)  # noqa: E731
    assert run("migrate").returncode == 0
    done = run("createuser", "solo", "--password", "long-enough", "--admin")
    assert done.returncode == 0, done.stderr
    listed = run("listusers").stdout
    assert "solo" in listed and "yes" in listed


CCX = "ccx-v1:OrgA+C1+2024+ccx@3"


def test_ccx_course_ids_are_accepted_by_createuser(tmp_path):
    """docs/access.md: CCX keys are accepted course ids (they used to be refused)."""
    env = {"PATH": "/usr/bin:/bin", "CAIRN_DATA_DIR": str(tmp_path / "data")}
    run = lambda *a: subprocess.run([CAIRN, *a], env=env, capture_output=True, text=True, timeout=300)  # noqa: E731
    assert run("migrate").returncode == 0
    done = run("createuser", "coach", "--password", "long-enough", "--course-id", CCX)
    assert done.returncode == 0, done.stderr
    assert f"course {CCX}" in done.stdout
    listed = json.loads(run("listusers", "--json").stdout)
    assert listed == [{"name": "coach", "admin": False, "course_ids": [CCX], "org_ids": []}]
    bad = run("createuser", "coach2", "--password", "long-enough", "--course-id", "ccx-v1:OrgA+C1+2024+ccx@x")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "not an Open edX course id" in bad.stderr


def test_a_ccx_belongs_to_the_org_of_its_master_course(datalake):
    """The SQL org of a key (used by org scopes) is the org edx-opaque-keys gives the key."""
    from cairn.engine.sql import sql_string
    from cairn.serve.access import org_of_course, org_of_course_id

    for key in (CCX, "ccx-v1:edX+DemoX+Demo_Course+ccx@1", "course-v1:OrgB+C+R", "OrgC/C/R"):
        in_sql = datalake.query_value(f"SELECT {org_of_course(sql_string(key))}")
        assert in_sql == org_of_course_id(key), key
