"""The server's cache of datalake accounts: a new account logs in at once, reloads stay bounded."""

from __future__ import annotations

import time

from cairn.serve.users import Authenticator, User, hash_password


def _user(name: str) -> User:
    return User(name, hash_password("correct horse"), False, ("course-v1:edX+DemoX+Demo_Course",), ())


def test_an_account_created_after_the_last_read_logs_in_at_once():
    stored = [_user("alice")]
    loads = []

    def load():
        loads.append(time.monotonic())
        return list(stored)

    accounts = Authenticator(load, ttl=60.0)  # a long cache: only the re-read of unknown names can help
    assert accounts.known("alice") and len(loads) == 1
    stored.append(_user("bob"))  # `cairn createuser bob` in another process
    time.sleep(Authenticator.RECHECK + 0.05)
    assert accounts.known("bob")
    assert accounts.authenticate("bob", "correct horse") is not None
    assert len(loads) == 2


def test_unknown_names_do_not_reload_more_than_once_per_recheck():
    loads = []
    accounts = Authenticator(lambda: loads.append(1) or [_user("alice")], ttl=60.0)
    accounts.users()
    for n in range(200):  # a burst of guesses at names that do not exist
        assert not accounts.known(f"nobody{n}")
    assert len(loads) <= 2
