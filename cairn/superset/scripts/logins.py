"""Superset logins, run inside Superset's environment (it cannot import Cairn).

Reads one JSON request on standard input and prints one JSON answer on its last line:
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Actions:

- ``setup``: the role every datalake login gets (``Cairn``: every Database and dataset;
  the datalake filters the rows), and the admin when missing (``admin`` object).
- ``upsert``: create or update a login (``username``, ``email``, ``password`` or null to
  keep it, ``admin``).
- ``delete``: remove a login (``username``; closed instead when its queries or charts
  refer to it); ``list``: every active login with its roles.
"""

import json
import logging
import sys

CAIRN_ROLE = "Cairn"
# Rights are the datalake's: Superset may show every dataset of the shared Database,
# and cairn serve answers each person with their own rows only.
CAIRN_ROLE_PERMISSIONS = (("all_datasource_access", "all_datasource_access"),
                          ("all_database_access", "all_database_access"))
USER_ROLES = ("Gamma", "sql_lab", CAIRN_ROLE)


def main() -> dict:
    request = json.loads(sys.stdin.read())
    logging.disable(logging.WARNING)
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        from superset import security_manager
        from superset.extensions import db

        action = request["action"]
        handler = {"setup": setup, "upsert": upsert, "delete": delete, "list": list_logins}[action]
        answer = handler(security_manager, db, request)
        db.session.commit()
        return {"ok": True, **answer}


def setup(sm, db, request) -> dict:
    role = sm.find_role(CAIRN_ROLE) or sm.add_role(CAIRN_ROLE)
    for permission, view in CAIRN_ROLE_PERMISSIONS:
        pv = sm.add_permission_view_menu(permission, view)
        sm.add_permission_role(role, pv)
    admin = request.get("admin")
    created = False
    if admin and sm.find_user(username=admin["username"]) is None:
        upsert(sm, db, {**admin, "admin": True})
        created = True
    return {"admin_created": created}


def _roles(sm, admin: bool) -> list:
    names = ("Admin",) if admin else USER_ROLES
    roles = [sm.find_role(name) for name in names]
    missing = [name for name, role in zip(names, roles) if role is None]
    if missing:
        raise LookupError(f"Superset has no role {', '.join(missing)} yet: run `cairn superset setup` first")
    return roles


def upsert(sm, db, request) -> dict:
    username, email = request["username"], request["email"]
    roles = _roles(sm, bool(request.get("admin")))
    other = sm.find_user(email=email)
    if other is not None and other.username != username:
        raise ValueError(f"the email {email} is already the Superset login {other.username}'s: give another --email")
    user = sm.find_user(username=username)
    first = request.get("first_name") or username
    last = request.get("last_name") or "-"
    if user is None:
        if not request.get("password"):
            raise ValueError(f"a password is needed to create the Superset login {username}")
        if not sm.add_user(username, first, last, email, roles, password=request["password"]):
            raise ValueError(f"Superset refused to create the login {username}")
        return {"created": True}
    user.email, user.roles, user.active = email, roles, True
    sm.update_user(user)
    if request.get("password"):
        sm.reset_password(user.id, request["password"])
    return {"created": False}


def delete(sm, db, request) -> dict:
    """Remove the login; one that ran queries or owns objects is referenced by them, so it is
    closed instead: inactive (it cannot log in), no roles, a random password, its email freed."""
    import secrets

    from sqlalchemy.exc import IntegrityError

    user = sm.find_user(username=request["username"])
    if user is None:
        return {"deleted": False}
    try:
        db.session.delete(user)
        db.session.commit()
        return {"deleted": True, "closed": False}
    except IntegrityError:
        db.session.rollback()
    user = sm.find_user(username=request["username"])
    user.active, user.roles = False, []
    user.email = f"{user.username}@deleted.invalid"
    sm.update_user(user)
    sm.reset_password(user.id, secrets.token_urlsafe(32))
    return {"deleted": True, "closed": True}


def list_logins(sm, db, request) -> dict:
    return {"logins": [{"username": u.username, "email": u.email, "active": bool(u.active),
                        "roles": sorted(r.name for r in u.roles)} for u in sm.get_all_users() if u.active]}


if __name__ == "__main__":
    try:
        answer = main()
    except (LookupError, ValueError) as exc:
        answer = {"ok": False, "error": str(exc)}
    except Exception as exc:  # one line for Cairn's CLI; the traceback stays in this script's stderr
        import traceback

        traceback.print_exc()
        answer = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    print(json.dumps(answer))
