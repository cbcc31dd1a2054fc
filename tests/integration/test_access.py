"""Access rights: the model covers every table, and restricted users cannot see around it.

The adversarial suite runs against a real `cairn serve` (tests/support/serve.py)
for a course-scoped user (course_user: course-v1:OrgA+C1+2024) and an org-scoped user
(org_user: OrgB, i.e. course-v1:OrgB+C3+2024), through clickhouse-connect, plain HTTP
and Superset's SQLAlchemy dialect. Every attempt must be refused, or return only the
rows of the user's courses.
"""

from __future__ import annotations

import httpx
import pytest

from cairn.serve import access
from cairn.serve.access import Scope, rule_for, server_statements
from support.serve import C1, C2, C3, DEMO, EVENTS_PER_COURSE, LEARNERS, PASSWORD, shared_server

USERS = {
    "course_user": {"courses": {C1}, "learners": {1}},
    "org_user": {"courses": {C3}, "learners": {3, 4}},
}
REFUSED = {497, 164}  # ACCESS_DENIED, READONLY


@pytest.fixture(scope="module")
def served():
    return shared_server()


@pytest.fixture(scope="module")
def clients(served):
    made = {name: served.client(name, PASSWORD, database="openedx") for name in USERS}
    made["boss"] = served.client("boss", PASSWORD, database="openedx")
    yield made
    for client in made.values():
        client.close()


def _outcome(client, sql: str, **kwargs):
    """("rows", rows) or ("error", code, text)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        return ("rows", client.query(sql, **kwargs).result_rows)
    except ClickHouseError as exc:
        text = str(exc)
        code = None
        marker = "code: "
        if marker in text:
            digits = text.split(marker, 1)[1].split(",")[0].split(" ")[0]
            code = int(digits) if digits.isdigit() else None
        return ("error", code, text)


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

def test_every_table_of_the_migrated_datalake_is_declared(datalake):
    tables = [r[0] for r in datalake.query_rows(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": datalake.database})]
    assert "events" in tables and "_quarantine" in tables
    # Names starting with "_" are Cairn's internal tables, with "." ClickHouse's own
    # inner tables (refreshable materialized views swap through ".tmp.inner_id...").
    undeclared = [t for t in tables if not t.startswith(("_", ".")) and t not in access.TABLES]
    assert undeclared == [], f"declare these in cairn/serve/access.py TABLES: {undeclared}"
    for name in tables:
        if name.startswith(("_", ".")):
            assert rule_for(name).kind == "internal"
    # Every declared rule's predicate is valid SQL on its table, for both kinds of scope.
    mysql_tables = {r[0] for r in datalake.query_rows(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine = 'MySQL'", {"db": datalake.database})}
    for name in tables:
        if access.filter_rule_for(name).kind == "internal":
            continue
        if name in mysql_tables:
            continue  # reads the Open edX MySQL server, not here in tests
        for scope in (Scope((C1,), ()), Scope((), ("OrgB",))):
            predicate = access.filter_rule_for(name).predicate(scope, datalake.database)
            datalake.query(f"SELECT count() FROM `{datalake.database}`.`{name}` WHERE {predicate}")


def test_the_catalog_names_every_table_of_the_migrated_datalake(datalake):
    """cairn/catalog.py is the one list: every table or view of the datalake is in it
    (materialized views, ClickHouse's inner tables and the storage of the MySQL views aside)."""
    from cairn import catalog

    rows = datalake.query_rows("SELECT name, engine FROM system.tables WHERE database = {db:String}",
                               {"db": datalake.database})
    missing = [name for name, engine in rows if engine != "MaterializedView" and not name.startswith(".")
               and not name.startswith("_mysql_") and catalog.table(name) is None]
    assert missing == [], f"declare these in cairn/catalog.py: {missing}"
    assert {name for name, _ in rows} >= {t.name for t in catalog.TABLES}


def test_undeclared_tables_are_internal_and_predicates_quote_values():
    assert rule_for("some_future_table").kind == "internal"
    assert rule_for("_anything").kind == "internal"
    hostile = Scope(("course-v1:A+B+C",), ("x'); DROP TABLE t; --",))
    predicate = rule_for("events").predicate(hostile, "openedx")
    assert "'x\\'); DROP TABLE t; --'" in predicate
    assert rule_for("events").predicate(Scope(), "openedx") == "0"


def test_server_engine_statements_come_from_the_same_model():
    statements = server_statements("alice", "s3cret'pw", Scope((C1,), ()), "openedx",
                                   ["events", "users", "_quarantine", "_mysql_users_copy", "undeclared"])
    text = "\n".join(statements)
    assert statements[0] == "CREATE USER IF NOT EXISTS `alice` IDENTIFIED WITH sha256_password BY 's3cret\\'pw'"
    assert "GRANT SELECT ON `openedx`.`events` TO `alice`" in text
    assert "_quarantine" not in text and "undeclared" not in text
    assert "ON `openedx`.`_mysql_users_copy` FOR SELECT USING id IN (SELECT user_id" in text
    assert "readonly = 1" in text
    admin = server_statements("root2", "pw123456", None, "openedx", ["events"])
    assert admin[-1] == "GRANT ALL ON *.* TO `root2` WITH GRANT OPTION"


# ---------------------------------------------------------------------------
# What each user sees
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("user", USERS)
def test_restricted_user_sees_only_their_rows(clients, user):
    client, allowed = clients[user], USERS[user]
    counts = dict(client.query("SELECT course_id, count() FROM events GROUP BY course_id").result_rows)
    assert counts == {c: EVENTS_PER_COURSE[c] for c in allowed["courses"]}
    assert {r[0] for r in client.query("SELECT id FROM users").result_rows} == allowed["learners"]
    emails = {r[0] for r in client.query("SELECT email FROM users").result_rows}
    assert emails == {LEARNERS[i][1] for i in allowed["learners"]}
    assert {r[0] for r in client.query("SELECT user_id FROM user_profiles").result_rows} == allowed["learners"]
    assert {r[0] for r in client.query("SELECT course_id FROM enrollments").result_rows} == allowed["courses"]
    rows = client.query("SELECT DISTINCT course_id, email FROM enrollments_with_profile").result_rows
    assert {r[0] for r in rows} == allowed["courses"]
    assert {r[1] for r in rows} == {LEARNERS[i][1] for i in allowed["learners"]}
    tables = {r[0] for r in client.query("SHOW TABLES").result_rows}
    assert "events" in tables and "users" in tables and not any(t.startswith("_") for t in tables)
    assert {r[0] for r in client.query("SHOW DATABASES").result_rows} == {"openedx"}


def test_admin_sees_everything(clients):
    boss = clients["boss"]
    courses = {r[0] for r in boss.query("SELECT DISTINCT course_id FROM events").result_rows}
    assert {C1, C2, C3, DEMO} <= courses
    assert {r[0] for r in boss.query("SELECT id FROM users").result_rows} == set(LEARNERS)
    assert boss.query("SELECT count() FROM _users").result_rows[0][0] >= 3


# ---------------------------------------------------------------------------
# The adversarial suite
# ---------------------------------------------------------------------------

# Queries whose rows, when they run, must hold only the user's courses in column 0.
ROWS_ONLY_ALLOWED = [
    "SELECT course_id FROM events",
    "SELECT course_id FROM openedx.events",
    "SELECT course_id FROM `openedx`.`events`",
    'SELECT course_id FROM "events"',
    "sElEcT course_id FrOm events wHeRe 1",
    "SELECT course_id FROM events PREWHERE 1 WHERE 1",
    "SELECT course_id FROM events WHERE course_id IN ('course-v1:OrgA+C2+2024', 'course-v1:OrgB+C3+2024', "
    "'course-v1:OrgA+C1+2024')",
    "SELECT course_id FROM events WHERE org IN ('OrgA', 'OrgB') OR 1 = 1",
    "SELECT course_id FROM events AS _quarantine",
    "SELECT e.course_id FROM events AS e INNER JOIN enrollments AS n ON e.user_id = n.user_id",
    "SELECT n.course_id FROM enrollments AS n LEFT JOIN events AS e ON e.user_id = n.user_id",
    "SELECT e.course_id FROM events AS e CROSS JOIN numbers(2) AS n",
    "SELECT course_id FROM (SELECT * FROM events)",
    "SELECT course_id FROM (SELECT * FROM (SELECT * FROM events UNION ALL SELECT * FROM events))",
    "SELECT arrayJoin((SELECT groupArray(course_id) FROM events))",
    "SELECT course_id FROM events WHERE user_id IN (SELECT id FROM users)",
    "SELECT course_id FROM events UNION ALL SELECT course_id FROM enrollments",
    "SELECT course_id FROM events UNION DISTINCT SELECT course_id FROM course_grades",
    "SELECT course_id FROM events INTERSECT SELECT course_id FROM events",
    "WITH x AS (SELECT * FROM events) SELECT course_id FROM x",
    "WITH events AS (SELECT * FROM openedx.events) SELECT course_id FROM events",
    "WITH (SELECT any(course_id) FROM events) AS c SELECT c FROM numbers(1) WHERE c != ''",
    "SELECT course_id FROM enrollments_with_profile",
    "SELECT course_id FROM learner_activity",
    "SELECT course_id FROM events /* UNION ALL SELECT line FROM _quarantine */",
    "SELECT course_id FROM events -- ; DROP TABLE events\n",
    "SELECT course_id FROM events;",
    "SELECT course_id FROM events ARRAY JOIN [1, 2] AS two",
]

# Tables without sample rows here: the query must run and return nothing foreign.
ROWS_MAYBE_EMPTY = [
    "SELECT course_id FROM grades_with_learner",
    "SELECT id FROM course_overviews",
    "SELECT course_key FROM block_completion",
    "SELECT course_id FROM course_blocks",
    "SELECT course_id FROM completion_with_blocks",
    "SELECT course_id FROM course_access_roles",
    "SELECT course_id FROM certificates",
    "SELECT course_id FROM subsection_grades",
    "SELECT course_id FROM video_events UNION ALL SELECT course_id FROM problem_events",
]

# Attempts that must be refused (an error; no rows).
MUST_FAIL = [
    "SELECT * FROM _quarantine",
    "SELECT * FROM openedx._users",
    "SELECT * FROM `openedx`.`_users`",
    'SELECT * FROM "_users"',
    "SELECT * FROM openedx._mysql_users_copy",
    "SELECT * FROM _checkpoints",
    "SELECT * FROM _migrations",
    "SELECT * FROM _ingest_stats",
    "SELECT count() FROM merge('openedx', 'events')",
    "SELECT count() FROM MERGE('openedx', '.*')",
    "SELECT count() FROM merge(currentDatabase(), '^_')",
    "SELECT * FROM events WHERE course_id IN (SELECT course_id FROM merge('openedx', 'events'))",
    "SELECT * FROM remote('127.0.0.1', openedx.events)",
    "SELECT * FROM remoteSecure('127.0.0.1', openedx.events)",
    "SELECT * FROM cluster('default', openedx.events)",
    "SELECT * FROM clusterAllReplicas('default', openedx.events)",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM FILE('/etc/hostname', 'LineAsString')",
    "SELECT file('/etc/passwd')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
    "SELECT * FROM mysql('127.0.0.1:3306', 'openedx', 'auth_user', 'root', '')",
    "SELECT * FROM s3('http://127.0.0.1:1/b/k.csv', 'CSV')",
    "SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')",
    "SELECT * FROM view(SELECT * FROM openedx._quarantine)",
    "SELECT * FROM loop(openedx.events)",
    "SELECT * FROM input('x String')",
    "SELECT * FROM dictionary('anything')",
    "SELECT dictGet('anything', 'x', toUInt64(1))",
    "SELECT dictGetOrDefault('anything', 'x', toUInt64(1), '')",
    "SELECT joinGet('openedx._users', 'name', 'x')",
    "SELECT * FROM system.dictionaries",
    "SELECT * FROM system.query_log",
    "SELECT query FROM system.processes",
    "SELECT * FROM system.users",
    "SELECT * FROM system.grants",
    "SELECT * FROM system.row_policies",
    "SELECT * FROM system.parts",
    "SELECT * FROM INFORMATION_SCHEMA.TABLES",
    "SELECT * FROM information_schema.columns",
    "SELECT * FROM events SETTINGS additional_table_filters = {'openedx.events': '1'}",
    "SELECT * FROM events SETTINGS readonly = 0",
    "SELECT * FROM (SELECT * FROM events SETTINGS additional_table_filters = {'openedx.events': '1'})",
    "SELECT * FROM events SETTINGS max_execution_time = 100000",
    "SELECT 1; SELECT * FROM _quarantine",
    "SELECT 1; DROP TABLE events",
    "SELECT * FROM events FORMAT Template",
    "SELECT * FROM events FORMAT CapnProto",
    "SELECT * FROM events FORMAT Protobuf",
    "SELECT 1 INTO OUTFILE '/tmp/cairn-outfile-attack'",
    "SELECT * FROM events INTO OUTFILE '/tmp/cairn-outfile-attack2' FORMAT CSV",
    "SELECT sleep(3)",
    "SELECT getSetting('additional_table_filters')",
    "EXPLAIN SELECT * FROM _quarantine",
    "EXPLAIN QUERY TREE SELECT * FROM _users",
    "DESCRIBE TABLE _users",
    "DESCRIBE TABLE merge('openedx', '_users')",
    "SHOW CREATE TABLE _users",
    "EXISTS TABLE _users",
    "SHOW TABLES FROM system",
    "SELECT * FROM system.columns WHERE 1 SETTINGS readonly = 0",
    "SELECT * FROM openedx.undeclared_course_table",
    # Scalar subqueries are folded into constants by the analyzer: checked in the syntax tree.
    "SELECT name FROM events ARRAY JOIN (SELECT groupArray(name) FROM _users) AS name",
    "SELECT (SELECT groupArray(email) FROM _mysql_users_copy)",
    "WITH (SELECT any(line) FROM _quarantine) AS s SELECT s",
    "SELECT 'x' IN _quarantine",
    "SELECT count() FROM events WHERE toString(user_id) IN (SELECT name FROM _users)",
]

STATEMENTS_MUST_FAIL = [
    "INSERT INTO events (course_id) VALUES ('course-v1:OrgA+C1+2024')",
    "INSERT INTO events SELECT * FROM events",
    "ALTER TABLE events DELETE WHERE 1",
    "ALTER TABLE events UPDATE org = 'x' WHERE 1",
    "DELETE FROM events WHERE 1",
    "DROP TABLE events",
    "DROP DATABASE openedx",
    "CREATE TABLE openedx.mine (x UInt8) ENGINE = Memory",
    "CREATE TEMPORARY TABLE mine (x UInt8)",
    "CREATE VIEW openedx.v AS SELECT * FROM _quarantine",
    "CREATE USER hacker IDENTIFIED BY 'x'",
    "GRANT ALL ON *.* TO course_user",
    "TRUNCATE TABLE events",
    "OPTIMIZE TABLE events FINAL",
    "RENAME TABLE events TO events2",
    "DETACH TABLE events",
    "SYSTEM FLUSH LOGS",
    "SYSTEM SHUTDOWN",
    "KILL QUERY WHERE 1",
    "SET additional_table_filters = {'openedx.events': '1'}",
    "SET readonly = 0",
    "USE system",
    "CHECK TABLE events",
]


@pytest.fixture(scope="module")
def undeclared_table(served):
    admin = served.client()
    admin.command("CREATE TABLE IF NOT EXISTS openedx.undeclared_course_table (course_id String) "
                  "ENGINE = MergeTree ORDER BY course_id")
    admin.command("INSERT INTO openedx.undeclared_course_table VALUES ('course-v1:OrgA+C2+2024')")
    admin.close()
    return "undeclared_course_table"


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("sql", ROWS_ONLY_ALLOWED)
def test_rows_are_only_the_users(clients, user, sql):
    outcome = _outcome(clients[user], sql)
    assert outcome[0] == "rows", outcome
    seen = {row[0] for row in outcome[1]}
    assert seen, "the query should see the user's own rows"
    assert seen <= USERS[user]["courses"], seen


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("sql", ROWS_MAYBE_EMPTY)
def test_other_tables_run_and_hold_only_the_users_rows(clients, user, sql):
    outcome = _outcome(clients[user], sql)
    assert outcome[0] == "rows", outcome
    assert {row[0] for row in outcome[1]} <= USERS[user]["courses"]


@pytest.mark.parametrize("user", USERS)
def test_format_clause_and_raw_formats(clients, user):
    client = clients[user]
    lines = client.raw_query("SELECT DISTINCT course_id FROM events FORMAT JSONEachRow").decode().split()
    assert {line for line in lines} == {f'{{"course_id":"{c}"}}' for c in USERS[user]["courses"]}
    csv = client.raw_query("SELECT DISTINCT course_id FROM events", fmt="CSV").decode().split()
    assert set(csv) == {f'"{c}"' for c in USERS[user]["courses"]}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("sql", MUST_FAIL)
def test_attempts_are_refused(clients, undeclared_table, user, sql):
    outcome = _outcome(clients[user], sql)
    assert outcome[0] == "error", outcome
    # Most are refused by the access checks; a few die in ClickHouse's own parser or
    # analyzer first (unknown dictionary / table): refused either way, with no rows.
    assert outcome[1] is not None


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("sql", STATEMENTS_MUST_FAIL)
def test_statements_are_refused_and_change_nothing(clients, served, user, sql):
    from clickhouse_connect.driver.exceptions import ClickHouseError

    with pytest.raises(ClickHouseError) as info:
        clients[user].command(sql)
    assert any(f"Code: {code}" in str(info.value) for code in REFUSED | {62}), str(info.value)
    admin = served.client()
    try:
        assert admin.command("SELECT count() FROM openedx.events WHERE course_id = {c:String}",
                             parameters={"c": C1}) == EVENTS_PER_COURSE[C1]
        assert admin.command("EXISTS TABLE openedx.mine") == 0
    finally:
        admin.close()


@pytest.mark.parametrize("user", USERS)
def test_access_checks_use_access_denied_codes(clients, user):
    for sql, code in (("SELECT * FROM _quarantine", 497), ("SELECT count() FROM merge('openedx', 'events')", 497),
                      ("SELECT * FROM file('/etc/passwd', 'LineAsString')", 497),
                      ("SELECT * FROM events SETTINGS readonly = 0", 164)):
        outcome = _outcome(clients[user], sql)
        assert outcome[:2] == ("error", code), outcome


@pytest.mark.parametrize("user", USERS)
def test_settings_in_the_url_cannot_lift_the_filters(served, user):
    auth = (user, PASSWORD)
    with httpx.Client(base_url=served.url, auth=auth, timeout=30) as http:
        for params in ({"additional_table_filters": "{'openedx.events':'1'}"}, {"readonly": "0"},
                       {"max_execution_time": "100000"}, {"default_format": "Template"},
                       {"database": "system"}):
            response = http.get("/", params={"query": "SELECT DISTINCT course_id FROM events", **params})
            assert response.status_code in (400, 403), (params, response.text)
            assert response.headers["X-ClickHouse-Exception-Code"] in ("164", "497"), response.text
        # The same value as the session's own is not a change, and is accepted.
        response = http.get("/", params={"query": "SELECT DISTINCT course_id FROM events", "readonly": "1"})
        assert response.status_code == 200 and set(response.text.split()) == USERS[user]["courses"]


@pytest.mark.parametrize("user", USERS)
def test_system_tables_are_filtered(clients, user):
    client = clients[user]
    names = {r[0] for r in client.query("SELECT name FROM system.tables").result_rows}
    assert "events" in names and not any(n.startswith("_") for n in names)
    assert client.query("SELECT count() FROM system.columns WHERE table = '_users'").result_rows == [(0,)]
    assert client.query("SELECT count() FROM system.tables WHERE database = 'system'").result_rows == [(0,)]


@pytest.mark.parametrize("user", USERS)
def test_huge_and_deep_queries_are_refused_and_server_survives(clients, user):
    client = clients[user]
    huge = "SELECT " + "+".join(["1"] * 200_000)
    assert _outcome(client, huge)[0] == "error"
    deep = "SELECT " + "(" * 5000 + "1" + ")" * 5000
    assert _outcome(client, deep)[0] == "error"
    assert client.query("SELECT count() FROM events").result_rows[0][0] == \
        sum(EVENTS_PER_COURSE[c] for c in USERS[user]["courses"])


@pytest.mark.parametrize("user", USERS)
def test_query_parameters_cannot_widen_scope(clients, user):
    client = clients[user]
    rows = client.query("SELECT count() FROM events WHERE course_id = {c:String} OR {c:String} = {c:String}",
                        parameters={"c": "x' OR 1=1 --"}).result_rows
    assert rows == [(sum(EVENTS_PER_COURSE[c] for c in USERS[user]["courses"]),)]


@pytest.mark.parametrize("user", USERS)
def test_identifier_parameters_are_checked_too(clients, user):
    client = clients[user]
    assert client.query("SELECT DISTINCT course_id FROM {t:Identifier}", parameters={"t": "events"}).result_rows \
        == [(c,) for c in USERS[user]["courses"]]
    for table in ("_users", "_quarantine"):
        outcome = _outcome(client, "SELECT count() FROM {t:Identifier}", parameters={"t": table})
        assert outcome[:2] == ("error", 497), outcome


@pytest.mark.parametrize("user", USERS)
def test_superset_dialect_as_a_restricted_user(served, user):
    import sqlalchemy as sa

    engine = sa.create_engine(f"clickhousedb://{user}:{PASSWORD}@{served.host}:{served.port}/openedx")
    try:
        inspector = sa.inspect(engine)
        tables = inspector.get_table_names()
        assert "events" in tables and not any(t.startswith("_") for t in tables)
        assert {c["name"] for c in inspector.get_columns("events")} >= {"course_id", "org"}
        with engine.connect() as conn:
            seen = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT course_id FROM events"))}
            assert seen == USERS[user]["courses"]
            for attack in ("SELECT * FROM _users", "SELECT count() FROM merge('openedx', 'events')",
                           "SELECT * FROM events SETTINGS additional_table_filters={'openedx.events':'1'}"):
                with pytest.raises(Exception) as info:
                    conn.execute(sa.text(attack)).fetchall()
                assert "497" in str(info.value) or "164" in str(info.value)
    finally:
        engine.dispose()


def test_scope_change_takes_effect(served):
    served.cairn("createuser", "mover", "--password", PASSWORD, "--course-id", C1)
    client = served.client("mover", PASSWORD, database="openedx")
    try:
        assert {r[0] for r in client.query("SELECT DISTINCT course_id FROM events").result_rows} == {C1}
        served.cairn("createuser", "mover", "--password", PASSWORD, "--course-id", C2, "--replace")
        import time

        time.sleep(1.2)  # the server re-reads accounts at most once a second
        assert {r[0] for r in client.query("SELECT DISTINCT course_id FROM events").result_rows} == {C2}
        served.cairn("deleteuser", "mover")
        time.sleep(1.2)
        with pytest.raises(Exception) as info:
            client.query("SELECT 1")
        assert "516" in str(info.value)
    finally:
        client.close()


@pytest.fixture(scope="module")
def sqlalchemy_engines(served):
    import sqlalchemy as sa

    engines = {user: sa.create_engine(f"clickhousedb://{user}:{PASSWORD}@{served.host}:{served.port}/openedx")
               for user in USERS}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("sql", MUST_FAIL + STATEMENTS_MUST_FAIL)
def test_superset_dialect_refuses_the_same_attempts(sqlalchemy_engines, undeclared_table, user, sql):
    with sqlalchemy_engines[user].connect() as conn:
        with pytest.raises(Exception) as info:
            conn.exec_driver_sql(sql).fetchall()
        assert "Code: " in str(info.value) or "code: " in str(info.value)


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("sql", ROWS_ONLY_ALLOWED[:12])
def test_superset_dialect_sees_only_the_users_rows(sqlalchemy_engines, user, sql):
    with sqlalchemy_engines[user].connect() as conn:
        seen = {row[0] for row in conn.exec_driver_sql(sql).fetchall()}
    assert seen and seen <= USERS[user]["courses"]
