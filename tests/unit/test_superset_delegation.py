"""Delegated logins: Superset's token for a user logs in as that user only, and only while the key exists."""

from __future__ import annotations

import os
import stat

from cairn.serve.delegation import DELEGATED_ADMIN, DelegationKey, ensure_key, key_path, token
from cairn.serve.users import Authenticator, User, hash_password


def _authenticator(data_dir, *users):
    """`cairn serve`'s authenticator over these accounts, with the data directory's delegation key."""
    return Authenticator(lambda: list(users), delegation_key_file=key_path(data_dir))


def _course_user(name):
    return User(name, hash_password("a real password"), False, ("course-v1:A+B+C",), ())


def test_the_key_is_made_once_and_private(tmp_path):
    path = ensure_key(tmp_path)
    first = path.read_text()
    assert ensure_key(tmp_path) == path and path.read_text() == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first.strip()) == 64


def test_a_token_is_bound_to_its_user_and_key(tmp_path):
    key = DelegationKey(ensure_key(tmp_path))
    secret = key.current()
    assert key.verify("alice", token(secret, "alice"))
    assert not key.verify("bob", token(secret, "alice"))
    assert not key.verify("alice", token(b"another key of the same length!!", "alice"))
    assert not key.verify("alice", "a real password")


def test_the_authenticator_accepts_delegated_logins_per_user(tmp_path):
    ensure_key(tmp_path)
    secret = key_path(tmp_path).read_text().strip().encode()
    accounts = _authenticator(tmp_path, _course_user("alice"), _course_user("bob"))
    alice = accounts.authenticate("alice", token(secret, "alice"))
    assert alice is not None and alice.name == "alice" and not alice.admin
    assert accounts.authenticate("alice", token(secret, "bob")) is None
    assert accounts.authenticate("alice", "a real password") is not None  # her own password still works
    assert accounts.authenticate("carol", token(secret, "carol")) is None  # no account, no login


def test_superset_admins_are_the_datalake_admin_only_with_their_token(tmp_path):
    ensure_key(tmp_path)
    secret = key_path(tmp_path).read_text().strip().encode()
    accounts = _authenticator(tmp_path, _course_user("alice"))
    assert accounts.known(DELEGATED_ADMIN)
    admin = accounts.authenticate(DELEGATED_ADMIN, token(secret, DELEGATED_ADMIN))
    assert admin is not None and admin.admin
    assert accounts.authenticate(DELEGATED_ADMIN, token(secret, "alice")) is None
    assert accounts.authenticate(DELEGATED_ADMIN, "") is None


def test_without_a_key_nothing_is_delegated(tmp_path):
    accounts = _authenticator(tmp_path, _course_user("alice"))
    assert not accounts.known(DELEGATED_ADMIN)
    assert accounts.authenticate("alice", token(b"k" * 64, "alice")) is None
    ensure_key(tmp_path)  # created later (first `cairn up` with Superset): taken into account at once
    secret = key_path(tmp_path).read_text().strip().encode()
    assert accounts.authenticate("alice", token(secret, "alice")) is not None
    key_path(tmp_path).unlink()  # removed: delegated logins stop
    assert accounts.authenticate("alice", token(secret, "alice")) is None


def test_accounts_of_a_remote_server_have_no_key(tmp_path):
    accounts = Authenticator(lambda: [_course_user("alice")])  # no key file: a ClickHouse server
    assert not accounts.delegation_enabled()
    assert not accounts.known(DELEGATED_ADMIN)
