"""Superset's home in the data directory: its configuration, secrets, metadata, caches and logs.

``DATA_DIR/superset/`` (0700) holds ``superset_config.py`` (rendered from
``superset_config.py.jinja`` at every start, 0600), ``secret_key`` (generated once,
0600), ``admin_password`` (only when Cairn generated it), ``superset.db`` (SQLite
metadata unless ``superset.metadata_uri``), ``cache/`` and ``superset.log``. The
delegation key is the datalake's: ``DATA_DIR/delegation.key`` (cairn/serve/delegation.py).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cairn.serve.delegation import DELEGATED_ADMIN, TOKEN_PREFIX, ensure_key
from cairn.superset.settings import SupersetSettings

TEMPLATE = Path(__file__).with_name("superset_config.py.jinja")
# The user name the shared Database connects with: a placeholder the mutator replaces,
# without any password (cairn serve refuses it), so the stored URI carries no secret.
PLACEHOLDER_USER = "superset"


def config_path(settings: SupersetSettings) -> Path:
    """The rendered ``superset_config.py``."""
    return settings.home / "superset_config.py"


def log_path(settings: SupersetSettings) -> Path:
    """Where Superset's web server writes its log."""
    return settings.home / "superset.log"


def database_uri(settings: SupersetSettings) -> str:
    """The URI of the one shared Superset Database, as stored in Superset (no secret in it)."""
    return (f"clickhousedb://{PLACEHOLDER_USER}@{settings.datalake_host}:{settings.datalake_port}/"
            f"{settings.database}")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (atomically replaced)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def open_log(settings: SupersetSettings):
    """Superset's log, opened for appending (created owner-only)."""
    return os.fdopen(os.open(log_path(settings), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


def _create_once(path: Path, text: str) -> bool:
    """Write ``text`` to a new owner-only file; False (and nothing changed) when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return True


def prepare_home(settings: SupersetSettings) -> Path:
    """Create the home (0700), the secret key and the delegation key once; render the configuration.

    Returns the configuration's path. Safe to run at every start: keys are never replaced.
    """
    if not settings.home.parent.exists():
        settings.home.parent.mkdir(parents=True, mode=0o700)
    settings.home.mkdir(exist_ok=True, mode=0o700)
    os.chmod(settings.home, 0o700)
    (settings.home / "cache").mkdir(exist_ok=True, mode=0o700)
    _create_once(settings.home / "secret_key", secrets.token_urlsafe(48) + "\n")
    key = ensure_key(settings.home.parent)
    path = config_path(settings)
    write_private(path, render_config(settings, key))
    return path


def ensure_home(settings: SupersetSettings) -> Path:
    """The configuration as rendered by the last start (`cairn up` knows the ports it chose), or
    rendered now when there is none; for the commands that only use Superset's metadata."""
    path = config_path(settings)
    return path if path.exists() else prepare_home(settings)


def render_config(settings: SupersetSettings, delegation_key: Path) -> str:
    """The text of ``superset_config.py`` for these settings."""
    import jinja2

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     autoescape=False)
    template = environment.from_string(TEMPLATE.read_text())
    home = settings.home
    return template.render(
        home=str(home),
        secret_key_file=str(home / "secret_key"),
        delegation_key_file=str(delegation_key),
        metadata_uri=settings.metadata_uri or f"sqlite:///{home / 'superset.db'}",
        redis_url=settings.redis_url,
        cache_dir=str(home / "cache"),
        data_cache_seconds=settings.data_cache_seconds,
        datalake_host=settings.datalake_host,
        datalake_port=settings.datalake_port,
        placeholder_user=PLACEHOLDER_USER,
        delegated_admin=DELEGATED_ADMIN,
        token_prefix=TOKEN_PREFIX,
    )


def admin_password_file(settings: SupersetSettings) -> Path:
    """Where a generated admin password is kept for Cairn's own imports (owner-only)."""
    return settings.home / "admin_password"


def admin_password(settings: SupersetSettings) -> str | None:
    """The admin's password: configured, else the one generated on first start, else None."""
    if settings.admin_password:
        return settings.admin_password
    try:
        return admin_password_file(settings).read_text().strip() or None
    except OSError:
        return None


def generate_admin_password(settings: SupersetSettings) -> str:
    """A new admin password, kept in ``admin_password`` (0600) for Cairn's dashboard imports."""
    password = secrets.token_urlsafe(12)
    write_private(admin_password_file(settings), password + "\n")
    return password
