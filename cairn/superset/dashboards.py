"""Importing the dashboards-as-code into a running Superset.

``import_dashboards`` builds the v1 assets bundle from ``cairn/superset/assets/``
(``bundle.build_bundle``) and posts it to ``/api/v1/assets/import/``, which overwrites
the database, datasets, charts and dashboards it names: every UUID is derived from a
name, so importing again updates the same objects in place (a changed dataset SQL or
chart shows at once) and never makes copies.
"""

from __future__ import annotations

from pathlib import Path

from cairn.errors import CairnError
from cairn.superset.bundle import build_bundle, bundle_files

__all__ = ["build_bundle", "import_dashboards", "SupersetSession"]

TIMEOUT = 120.0


class SupersetSession:
    """A logged-in REST session: bearer token, CSRF token and the session cookie, as Superset wants for POSTs."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = TIMEOUT):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout, follow_redirects=False)
        try:
            answer = self.client.post("/api/v1/security/login",
                                      json={"username": username, "password": password, "provider": "db",
                                            "refresh": False})
        except httpx.HTTPError as exc:
            self.client.close()
            raise CairnError(f"cannot reach Superset at {self.base_url}: {exc}") from None
        if answer.status_code != 200:
            self.client.close()
            raise CairnError(f"Superset at {self.base_url} refused the login of {username!r} "
                             f"(HTTP {answer.status_code}): check the user name and password")
        self.client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        csrf = self.client.get("/api/v1/security/csrf_token/")
        if csrf.status_code != 200:
            self.client.close()
            raise CairnError(f"Superset at {self.base_url} gave no CSRF token (HTTP {csrf.status_code})")
        self.client.headers["X-CSRFToken"] = csrf.json()["result"]
        self.client.headers["Referer"] = self.base_url + "/"

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.client.post(path, **kwargs)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "SupersetSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def import_dashboards(base_url: str, username: str, password: str, database_uri: str,
                      assets: Path | None = None) -> dict:
    """Build the bundle and import it into the Superset at ``base_url`` (overwriting).

    Returns what was imported: ``{"dashboards": n, "charts": n, "datasets": n,
    "bundle_bytes": n}``. Raises CairnError with one line saying what went wrong.
    """
    files = bundle_files(database_uri, assets)
    bundle = build_bundle(database_uri, assets)
    with SupersetSession(base_url, username, password) as session:
        answer = session.post("/api/v1/assets/import/",
                              files={"bundle": ("cairn_assets.zip", bundle, "application/zip")},
                              data={"passwords": "{}", "sparse": "false"})
    if answer.status_code != 200:
        raise CairnError(f"Superset refused the dashboards (HTTP {answer.status_code}): {_reason(answer)}")
    return {
        "dashboards": sum(1 for name in files if name.startswith("dashboards/")),
        "charts": sum(1 for name in files if name.startswith("charts/")),
        "datasets": sum(1 for name in files if name.startswith("datasets/")),
        "bundle_bytes": len(bundle),
    }


def _reason(answer) -> str:
    """The first error message of a Superset error answer, on one line."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:300].replace("\n", " ")
    errors = body.get("errors") or []
    if errors:
        first = errors[0]
        extra = first.get("extra") or {}
        details = "; ".join(f"{k}: {v}" for k, v in extra.items() if k.endswith(".yaml"))[:500]
        return (first.get("message") or str(first))[:300] + (f" ({details})" if details else "")
    return str(body.get("message") or body)[:300]
