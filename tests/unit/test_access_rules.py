"""Access predicates and scope validation, without an engine."""

from __future__ import annotations

import pytest

from cairn import catalog
from cairn.errors import CairnError
from cairn.serve import access
from cairn.serve.access import Scope, rule_for

C1 = "course-v1:OrgA+C1+2024"


def test_every_catalog_entry_has_a_rule():
    for entry in catalog.TABLES:
        rule = rule_for(entry.name)
        expected = "course" if entry.kind == "event" else entry.kind
        assert rule.kind == expected, entry.name
        if entry.public:
            assert access.TABLES[entry.name] == rule
    assert set(access.TABLES) == {t.name for t in catalog.public_tables()}
    assert access.EVENT_TABLES == catalog.EVENT_TABLES


def test_course_scope_predicate():
    predicate = rule_for("events").predicate(Scope((C1,), ()), "openedx")
    assert predicate == f"(has(CAST(['{C1}'], 'Array(String)'), course_id))"


def test_org_scope_uses_the_org_column_or_the_course_key():
    assert rule_for("events").predicate(Scope((), ("OrgB",)), "openedx") == \
        "(has(CAST(['OrgB'], 'Array(String)'), org))"
    predicate = rule_for("enrollments").predicate(Scope((), ("OrgB",)), "openedx")
    assert "multiIf(match(course_id" in predicate and "'OrgB'" in predicate


def test_course_and_org_scopes_combine_with_or():
    predicate = rule_for("course_blocks").predicate(Scope((C1,), ("OrgB",)), "db")
    assert predicate.count(" OR ") == 1


def test_learner_scope_goes_through_enrollments():
    predicate = rule_for("users").predicate(Scope((C1,), ()), "my db")
    assert predicate.startswith("id IN (SELECT user_id FROM `my db`.enrollments WHERE ")
    assert f"'{C1}'" in predicate


def test_empty_scope_internal_and_shared():
    assert rule_for("events").predicate(Scope(), "openedx") == "0"
    assert rule_for("_users").predicate(Scope((C1,), ()), "openedx") == "0"
    assert access.SHARED.predicate(Scope(), "openedx") == "1"
    assert rule_for("never_declared").kind == "internal"
    assert rule_for(".inner_id.abc").kind == "internal"


def test_backing_tables_filter_with_their_view_rule():
    assert access.filter_rule_for("_mysql_users_copy") == rule_for("users")
    assert access.filter_rule_for("_mysql_enrollments_live") == rule_for("enrollments")
    assert access.filter_rule_for("_mysql_unknown_copy").kind == "internal"
    assert "_mysql_users_copy" not in access.visible_tables(["_mysql_users_copy", "users"])


def test_values_are_quoted():
    predicate = rule_for("events").predicate(Scope((), ("x'); DROP TABLE t; --",)), "openedx")
    assert "'x\\'); DROP TABLE t; --'" in predicate


def test_course_id_and_org_validation():
    assert access.validate_course_id(C1) == C1
    assert access.validate_course_id("OrgA/C1/2024") == "OrgA/C1/2024"
    with pytest.raises(CairnError, match="not an Open edX course id"):
        access.validate_course_id("not a course")
    assert access.validate_org("Org_A.b~c-d") == "Org_A.b~c-d"
    for bad in ("", "a b", "x'y", "a" * 65):
        with pytest.raises(CairnError, match="not a valid organisation id"):
            access.validate_org(bad)
    scope = access.scope_of([C1, C1], ["OrgB", "OrgB"])
    assert scope == Scope((C1,), ("OrgB",))


def test_session_setup_ends_read_only():
    statements = access.session_setup(Scope((C1,), ()), "openedx", ["events", "_quarantine"])
    assert statements[-1] == "SET readonly = 1"
    assert "openedx._quarantine" in statements[0] and "system.query_log" in statements[0]


CCX = "ccx-v1:OrgA+C1+2024+ccx@3"


def test_ccx_course_ids_are_accepted_and_belong_to_their_master_course_org():
    """docs/access.md accepts CCX keys: edx-opaque-keys parses them (edx-ccx-keys plugin)."""
    assert access.validate_course_id(CCX) == CCX
    assert access.scope_of([CCX, CCX], []) == Scope((CCX,), ())
    assert access.org_of_course_id(CCX) == "OrgA"
    assert access.org_of_course_id(C1) == "OrgA" and access.org_of_course_id("OrgB/C/R") == "OrgB"
    for bad in ("ccx-v1:OrgA+C1+2024", "ccx-v1:OrgA+C1+2024+ccx@x", "ccx-v1:OrgA+C1+2024+ccx@3'--",
                "ccx-v1:", "ccx-v2:OrgA+C1+2024+ccx@3"):
        with pytest.raises(CairnError, match="not an Open edX course id"):
            access.validate_course_id(bad)

