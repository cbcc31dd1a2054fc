"""Superset in the stack `cairn up` runs: admin login in a real browser, logins follow the
datalake users, a killed Superset or cairn serve is restarted, `cairn status` shows it."""

from __future__ import annotations

import psutil
import pytest

from conftest import Stack, wait_for


def _children(stack: Stack, marker: str) -> list[psutil.Process]:
    return [p for p in psutil.Process(stack.process.pid).children() if marker in " ".join(p.cmdline())]


def test_the_admin_logs_in_with_a_browser(stack: Stack):
    with stack.browser_page() as page:
        page.goto(f"{stack.superset_url}/dashboard/list/")
        page.wait_for_selector("text=Dashboards", timeout=60_000)
        assert "/login" not in page.url
        page.screenshot(path=str(stack.cwd / "admin-dashboards.png"))
    assert f"Superset: {stack.superset_url}" in stack.output()


def test_a_wrong_password_is_refused(stack: Stack):
    with pytest.raises(PermissionError):
        stack.api(stack.admin_user, "not-the-password")


def test_createuser_and_deleteuser_manage_both_logins(stack: Stack):
    name, password = "e2e_lifecycle", "lifecycle-password"
    stack.cairn("createuser", name, "--password-stdin", "--admin", "--email", "lifecycle@example.com",
                input=password + "\n")
    api = stack.api(name, password)  # logs in: the Superset login exists, with the datalake password
    me = api.get("/api/v1/me/roles/").json()["result"]
    assert "Admin" in me["roles"]
    answer = api.sql("SELECT currentUser() AS who", stack.cairn_database_id())
    assert answer.json()["data"] == [{"who": "superset_admin"}]  # Superset admins query as the datalake admin
    done = stack.cairn("deleteuser", name)
    assert "Superset login e2e_lifecycle deleted" in done.stdout
    with pytest.raises(PermissionError):
        stack.api(name, password)
    assert name not in stack.cairn("listusers", "--json").stdout


def test_createuser_refuses_a_bad_email_before_creating_anything(stack: Stack):
    done = stack.cairn("createuser", "e2e_bad_email", "--password", "password-123", "--admin",
                       "--email", "not-an-email", check=False)
    assert done.returncode == 1
    assert "is not an email address" in done.stderr and "Traceback" not in done.stderr
    assert "e2e_bad_email" not in stack.cairn("listusers", "--json").stdout


def test_status_shows_superset(stack: Stack):
    done = stack.cairn("status")
    assert "superset" in done.stdout and "answering" in done.stdout
    done = stack.cairn("superset", "status", "--json")
    assert stack.superset_url in done.stdout and "not answering" not in done.stdout


def test_a_killed_superset_is_restarted(stack: Stack):
    (victim,) = _children(stack, "gunicorn")
    victim.kill()
    wait_for(lambda: "superset restarted" in stack.output(), 60, "cairn up to restart Superset")
    assert "superset exited (status -9" in stack.output()
    wait_for(lambda: _answers(stack), 600, "the restarted Superset")
    (again,) = _children(stack, "gunicorn")
    assert again.pid != victim.pid


def test_a_killed_cairn_serve_is_restarted_and_superset_queries_again(stack: Stack):
    (victim,) = _children(stack, "serve_child")
    victim.kill()
    wait_for(lambda: "cairn serve restarted" in stack.output(), 60, "cairn up to restart cairn serve")
    database_id = stack.cairn_database_id()

    def counted():
        answer = stack.api().sql("SELECT count() AS n FROM openedx.events", database_id)
        return answer.status_code == 200 and answer.json()["data"][0]["n"] > 0

    wait_for(counted, 300, "SQL Lab to answer through the restarted cairn serve", every=3)


def _answers(stack: Stack) -> bool:
    import httpx

    try:
        return httpx.get(f"{stack.superset_url}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def test_superset_run_serves_in_the_foreground_and_import_dashboards_reaches_it(stack: Stack):
    """`cairn superset run` (containers): the web server in the foreground, stopped by SIGTERM;
    `cairn superset import-dashboards --url` imports into it (again: in place)."""
    import signal
    import subprocess
    import sys

    from conftest import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(stack.cwd / "superset-run.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "cairn", "--set", f"superset.port={port}", "--set",
                                "superset.workers=1", "superset", "run"], cwd=stack.cwd, env=stack.env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: process.poll() is not None or _answers_at(url), 600, "cairn superset run", every=2)
        assert process.poll() is None, (stack.cwd / "superset-run.log").read_text()
        done = stack.cairn("superset", "import-dashboards", "--url", url, timeout=600)
        assert "dashboards imported" in done.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        log.close()
    assert code == 0
    assert not _answers_at(url)


def _answers_at(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False
