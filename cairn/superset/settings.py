"""The ``superset.*`` settings, added to Cairn's configuration through ``cairn.hooks.SETTINGS``.

Imported by every module of this package, so that the settings exist before a
configuration is loaded by any command that may start or reach Superset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cairn import hooks
from cairn.config import Setting, _parse_bool, _text, integer

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

VENV_DIR_NAME = ".venv-superset"


def _url(schemes: tuple[str, ...], what: str):
    text = _text(what=what)

    def parse(value):
        url = text(value).strip()
        if url and not url.startswith(schemes):
            raise ValueError(f"expected {what} starting with " + " or ".join(schemes) + ", or empty")
        return url

    return parse


SUPERSET_SETTINGS = (
    Setting("superset.enabled", True, _parse_bool,
            "`cairn up` runs Superset beside `cairn serve` (false, or `cairn up --no-superset`: datalake only)"),
    Setting("superset.venv", "", _text(what="a folder path"),
            f"Superset's virtual environment (empty: {VENV_DIR_NAME} in Cairn's project folder, "
            "else in the current folder)"),
    Setting("superset.host", "127.0.0.1", _text(empty=False, what="an address"), "address Superset listens on"),
    Setting("superset.port", 8088, integer(0, 65535, "a port number between 0 (any free port) and 65535"),
            "port of Superset's web server"),
    Setting("superset.workers", 2, integer(1, 64, "a whole number from 1 to 64"),
            "gunicorn worker processes (about 300 MB each)"),
    Setting("superset.threads", 8, integer(1, 256, "a whole number from 1 to 256"), "threads per worker"),
    Setting("superset.admin_user", "admin", _text(empty=False, what="a user name"),
            "Superset admin created on first start"),
    Setting("superset.admin_email", "admin@example.com", _text(empty=False, what="an email address"),
            "email of the Superset admin"),
    Setting("superset.admin_password", "", _text(what="a password"),
            "password of the Superset admin (empty: generated on first start, printed once)", secret=True),
    Setting("superset.metadata_uri", "", _url(("postgresql://", "postgresql+psycopg2://", "sqlite:///"),
                                               "a database URL"),
            "Superset's metadata database (empty: SQLite in DATA_DIR/superset; or postgresql://...)",
            secret=True),
    Setting("superset.redis_url", "", _url(("redis://", "rediss://", "unix://"), "a Redis URL"),
            "Redis for Superset's caches (empty: on disk in DATA_DIR/superset/cache)", secret=True),
    Setting("superset.data_cache_seconds", 10, integer(1, 86400, "a whole number of seconds from 1 to 86400"),
            "how long a chart's data stays cached (short: dashboards show events within seconds)"),
    Setting("superset.datalake_host", "", _text(what="a host name"),
            "host Superset reaches `cairn serve` at (empty: serve.host, or 127.0.0.1 when it listens everywhere)"),
    Setting("superset.datalake_port", 0, integer(0, 65535, "a port number, 0 for serve.port"),
            "port Superset reaches `cairn serve` at (0: serve.port)"),
)
for _setting in SUPERSET_SETTINGS:
    hooks.SETTINGS.add(_setting)


@dataclass(frozen=True)
class SupersetSettings:
    """The ``superset.*`` settings of one configuration, resolved (paths absolute, ports known)."""

    enabled: bool
    venv: Path
    home: Path
    host: str
    port: int
    workers: int
    threads: int
    admin_user: str
    admin_email: str
    admin_password: str
    metadata_uri: str
    redis_url: str
    data_cache_seconds: int
    datalake_host: str
    datalake_port: int
    database: str

    @property
    def url(self) -> str:
        """Where a browser on this machine opens Superset."""
        from cairn.engine.served import connect_host

        return f"http://{connect_host(self.host)}:{self.port}"


def default_venv() -> Path:
    """``.venv-superset`` beside Cairn's source (a checkout), else in the current folder."""
    project = Path(__file__).resolve().parents[2]
    candidate = project / VENV_DIR_NAME
    if candidate.exists() or (project / "pyproject.toml").exists():
        return candidate
    return Path.cwd() / VENV_DIR_NAME


def superset_settings(config: "Config", port: int | None = None, datalake_port: int | None = None
                      ) -> SupersetSettings:
    """The resolved settings; ``port``/``datalake_port`` replace ports only known once listening."""
    from cairn.engine.served import connect_host

    venv = config["superset.venv"]
    return SupersetSettings(
        enabled=config["superset.enabled"],
        venv=Path(venv).expanduser().resolve() if venv else default_venv(),
        home=config.data_dir / "superset",
        host=config["superset.host"],
        port=config["superset.port"] if port is None else port,
        workers=config["superset.workers"],
        threads=config["superset.threads"],
        admin_user=config["superset.admin_user"],
        admin_email=config["superset.admin_email"],
        admin_password=config["superset.admin_password"],
        metadata_uri=config["superset.metadata_uri"],
        redis_url=config["superset.redis_url"],
        data_cache_seconds=config["superset.data_cache_seconds"],
        datalake_host=config["superset.datalake_host"] or connect_host(config["serve.host"]),
        datalake_port=datalake_port or config["superset.datalake_port"] or config["serve.port"],
        database=config.database,
    )
