"""Superset's own virtual environment: finding it, and running its commands and scripts.

Superset is not importable from Cairn's environment (it pins SQLAlchemy 1.4 and
pandas 2.1): every step runs as a child process of the ``superset.venv`` interpreter,
with ``SUPERSET_CONFIG_PATH`` pointing at the rendered configuration.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Sequence

from cairn.errors import CairnError
from cairn.superset.home import config_path
from cairn.superset.settings import SupersetSettings

SCRIPTS = Path(__file__).with_name("scripts")
# Superset's files (metadata, caches, logs) are private like the rest of the data directory.
PRIVATE_UMASK = 0o077
INSTALL_HINT = "run `make setup-superset` (or set superset.venv / CAIRN_SUPERSET_VENV)"


def executable(settings: SupersetSettings, name: str) -> Path:
    """The path of ``name`` in Superset's environment, or one clear error when it is not installed."""
    path = settings.venv / "bin" / name
    if not path.exists():
        raise CairnError(f"Superset is not installed in {settings.venv} (no bin/{name}): {INSTALL_HINT}")
    return path


def environment(settings: SupersetSettings) -> dict[str, str]:
    """The environment Superset's processes run with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update({"SUPERSET_CONFIG_PATH": str(config_path(settings)), "FLASK_APP": "superset.app:create_app()",
                "SUPERSET_HOME": str(settings.home), "VIRTUAL_ENV": str(settings.venv),
                "PATH": f"{settings.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"})
    return env


def run_superset(settings: SupersetSettings, args: Sequence[str], what: str, timeout: float = 600) -> str:
    """Run ``superset ARGS`` (its output goes to the Superset log); raise one line when it fails."""
    from cairn.superset.home import log_path, open_log

    command = [str(executable(settings, "superset")), *args]
    done = subprocess.run(command, env=environment(settings), cwd=settings.home, capture_output=True, text=True,
                          timeout=timeout, umask=PRIVATE_UMASK)
    with open_log(settings) as log:
        log.write(f"$ superset {' '.join(args)}\n{done.stdout}{done.stderr}\n".encode())
    if done.returncode != 0:
        raise CairnError(f"Superset could not {what} (exit {done.returncode}): {_last_error(done.stderr)}; "
                         f"see {log_path(settings)}")
    return done.stdout


def run_script(settings: SupersetSettings, script: str, request: dict[str, Any], timeout: float = 300) -> dict:
    """Run ``scripts/<script>.py`` in Superset's environment with ``request`` on its standard input.

    The script answers one JSON document on its last line of output: ``{"ok": true, ...}``
    or ``{"ok": false, "error": "one line"}`` (raised as CairnError).
    """
    python = executable(settings, "python")
    done = subprocess.run([str(python), str(SCRIPTS / f"{script}.py")], input=json.dumps(request),
                          env=environment(settings), cwd=settings.home, capture_output=True, text=True,
                          timeout=timeout, umask=PRIVATE_UMASK)
    answer = _last_json(done.stdout)
    if answer is None:
        raise CairnError(f"Superset's {script} step failed (exit {done.returncode}): {_last_error(done.stderr)}")
    if not answer.get("ok"):
        raise CairnError(answer.get("error") or f"Superset's {script} step failed")
    return answer


def _last_json(output: str) -> dict | None:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _last_error(stderr: str) -> str:
    """The most telling line of a failed command's error output."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no error output"
