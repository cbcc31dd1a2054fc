"""The cairnlake Tutor plugin, rendered and run offline with real Tutor 22.0.3.

Tutor, its validators and the plugin live in .venv-tutor (scripts/setup-tutor-env.sh, run
here when the venv is missing). For a matrix of settings the plugin is enabled in a
temporary TUTOR_ROOT and env/ rendered once; every Compose file is checked against the
Compose specification, the kustomized Kubernetes output with kubernetes-validate --strict,
the Dockerfile with hadolint, scripts with ``sh -n`` and Python with ``compile``. Jobs are
captured as Tutor would run them (tests/tutor/capture.py: only Docker/kubectl are replaced)
and, for the embedded engine, the rendered init and do scripts are executed here against
a real `cairn serve` and MariaDB. Not possible here: building the image, `launch`, a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import PROJECT_ROOT, SHARED
from support.serve import TRACKING_LOG, start_server

TUTOR_VENV = PROJECT_ROOT / ".venv-tutor"
TUTOR_BIN = TUTOR_VENV / "bin"
CAPTURE = PROJECT_ROOT / "tests" / "tutor" / "capture.py"
CAIRN_BIN = Path(sys.executable).parent
DEMO_COURSE = SHARED / "demo-course" / "v2-OpenedX-DemoX-DemoCourse"
DEMO = "course-v1:edX+DemoX+Demo_Course"
OTHER = "course-v1:OrgZ+Z1+2026"

MATRIX = {
    "embedded-superset-sidecar": {"CAIRNLAKE_ENGINE": "embedded", "CAIRNLAKE_RUN_SUPERSET": True,
                                  "CAIRNLAKE_K8S_COLLECTOR": "sidecar"},
    "embedded-nosuperset-node": {"CAIRNLAKE_ENGINE": "embedded", "CAIRNLAKE_RUN_SUPERSET": False,
                                 "CAIRNLAKE_K8S_COLLECTOR": "node"},
    "clickhouse-superset-node": {"CAIRNLAKE_ENGINE": "clickhouse", "CAIRNLAKE_RUN_SUPERSET": True,
                                 "CAIRNLAKE_K8S_COLLECTOR": "node",
                                 "CAIRNLAKE_REPOSITORY": "https://git.example.org/cairn.git"},
    "external-clickhouse-nosuperset-sidecar": {
        "CAIRNLAKE_ENGINE": "clickhouse", "CAIRNLAKE_RUN_CLICKHOUSE": False,
        "CAIRNLAKE_CLICKHOUSE_HOST": "clickhouse.example.org", "CAIRNLAKE_RUN_SUPERSET": False,
        "CAIRNLAKE_K8S_COLLECTOR": "sidecar"},
}
COMPOSE_FILES = ["local/docker-compose.yml", "local/docker-compose.prod.yml", "local/docker-compose.jobs.yml",
                 "dev/docker-compose.yml", "dev/docker-compose.jobs.yml"]
PLUGIN_FILES = ["plugins/cairnlake/build/cairnlake/Dockerfile", "plugins/cairnlake/apps/cairn/cairn.env",
                "plugins/cairnlake/apps/cairn/remote.env", "plugins/cairnlake/apps/cairn/serve.sh",
                "plugins/cairnlake/apps/cairn/ping.py", "plugins/cairnlake/apps/lms/cairn_dump_course_blocks.py"]
DO_COMMANDS = {
    "cairnlake-createuser": ["alice", "--email", "alice@example.org", "-c", DEMO, "-p", "alice-password-1"],
    "cairnlake-deleteuser": ["alice"],
    "cairnlake-import-dashboards": [],
    "cairnlake-backfill": [],
    "cairnlake-import-courses": ["-c", DEMO],
    "cairnlake-migrate": ["--dry-run"],
    "cairnlake-status": [],
}


@pytest.fixture(scope="module")
def tutor_venv() -> Path:
    """.venv-tutor, created by scripts/setup-tutor-env.sh when missing (a few minutes, once)."""
    if not (TUTOR_BIN / "tutor").exists():
        done = subprocess.run([str(PROJECT_ROOT / "scripts" / "setup-tutor-env.sh")], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            pytest.fail(f"scripts/setup-tutor-env.sh failed: {done.stderr[-2000:]}")
    return TUTOR_VENV


def yaml_documents(text: str) -> list:
    """The documents of a YAML text, parsed by Tutor's environment (PyYAML is Tutor's, not Cairn's, dependency)."""
    done = run([TUTOR_BIN / "python", "-c", "import sys, json, yaml; "
                "json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout, default=str)"],
               input=text)
    return json.loads(done.stdout)


def yaml_file(path: Path):
    return yaml_documents(path.read_text())[0]


def tutor_env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "TUTOR_"))}
    env.update(TUTOR_ROOT=str(root), TUTOR_PLUGINS_ROOT=str(root / "plugins"),
               PATH=f"{TUTOR_BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def run(command: list, env: dict | None = None, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], env=env, capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 300), **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def render(root: Path, settings: dict) -> Path:
    """Enable the plugin in a fresh TUTOR_ROOT and save the configuration (renders env/)."""
    env = tutor_env(root)
    run([TUTOR_BIN / "tutor", "plugins", "enable", "cairnlake"], env)
    sets = [word for key, value in settings.items() for word in ("--set", f"{key}={json.dumps(value)}")]
    run([TUTOR_BIN / "tutor", "config", "save", *sets], env)
    return root / "env"


def capture_results(root: Path, commands: list[list[str]]) -> list[dict]:
    """Exit code, stderr and jobs of each `tutor ...` command, run as Tutor would (tests/tutor/capture.py, one process)."""
    out, listed = root / "captured.json", root / "commands.json"
    listed.write_text(json.dumps(commands))
    run([TUTOR_BIN / "python", CAPTURE, out, listed], tutor_env(root), timeout=600)
    return json.loads(out.read_text())


def capture(root: Path, commands: list[list[str]]) -> list[list[dict]]:
    """The jobs each `tutor ...` command runs; every command must succeed."""
    results = capture_results(root, commands)
    for args, result in zip(commands, results):
        assert result["exit"] == 0, (args, result)
    return [result["jobs"] for result in results]


def compose_job(argv: list[str]) -> tuple[str, str]:
    """(job service, script) of a captured `docker compose ... run --rm [-T] SERVICE sh -e -c SCRIPT`."""
    assert argv[-4:-1] == ["sh", "-e", "-c"], argv
    return argv[-5], argv[-1]


def k8s_job(manifest: dict) -> tuple[str, str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["sh", "-e", "-c"], container
    return manifest["metadata"]["labels"]["app.kubernetes.io/name"], container["args"][3]


class Rendered:
    """One matrix point: its env/, config and the manifests, each computed once."""

    def __init__(self, name: str, root: Path, settings: dict):
        self.name, self.root, self.settings = name, root, settings
        self._compose: dict[str, dict] = {}
        self.env = render(root, settings)
        self.config = yaml_file(root / "config.yml")
        self.kustomized = run([TUTOR_BIN / "kubectl", "kustomize", self.env], tutor_env(root)).stdout
        self.objects = yaml_documents(self.kustomized)

    def compose(self, path: str) -> dict:
        if path not in self._compose:
            self._compose[path] = yaml_file(self.env / path)
        return self._compose[path]

    def objects_of(self, kind: str) -> dict[str, dict]:
        return {obj["metadata"]["name"]: obj for obj in self.objects if obj["kind"] == kind}

    @property
    def embedded(self) -> bool:
        return self.settings["CAIRNLAKE_ENGINE"] == "embedded"


@pytest.fixture(scope="module", params=sorted(MATRIX))
def rendered(request, tutor_venv, tmp_path_factory) -> Rendered:
    return Rendered(request.param, tmp_path_factory.mktemp(f"tutor-{request.param}"), MATRIX[request.param])


def test_expected_files_and_services(rendered):
    for path in COMPOSE_FILES + PLUGIN_FILES + ["kustomization.yml", "k8s/override.yml", "apps/caddy/Caddyfile"]:
        assert (rendered.env / path).is_file(), path
    services = set(rendered.compose("local/docker-compose.yml")["services"])
    superset = rendered.settings["CAIRNLAKE_RUN_SUPERSET"]
    run_clickhouse = not rendered.embedded and rendered.settings.get("CAIRNLAKE_RUN_CLICKHOUSE", True)
    assert ("cairnlake-serve" in services) == rendered.embedded
    assert ("cairnlake-clickhouse" in services) == run_clickhouse
    assert ("cairnlake-superset" in services) == superset
    assert "cairnlake-collector" in services
    collector = rendered.compose("local/docker-compose.yml")["services"]["cairnlake-collector"]
    assert "/var/run/docker.sock" not in json.dumps(collector)
    assert {"../../data/lms:/openedx-data/lms:ro,z", "../../data/cms:/openedx-data/cms:ro,z"} <= set(collector["volumes"])
    assert collector["command"][:2] == ["cairn", "collect"]
    if rendered.embedded:
        serve = rendered.compose("local/docker-compose.yml")["services"]["cairnlake-serve"]
        assert "../../data/cairnlake/lake:/data:z" in serve["volumes"]
        assert serve["healthcheck"]["test"] == ["CMD", "python", "/opt/cairnlake/ping.py"]
    caddy = (rendered.env / "apps/caddy/Caddyfile").read_text()
    assert ('import proxy "cairnlake-superset:8088"' in caddy) == superset
    assert ("analytics.local.openedx.io{$default_site_port}" in caddy) == superset
    # The LMS script is the project's own, rendered unchanged (Jinja only drops the final newline).
    dumped = (rendered.env / "plugins/cairnlake/apps/lms/cairn_dump_course_blocks.py").read_text()
    assert dumped.rstrip("\n") == (PROJECT_ROOT / "cairn/sources/lms/cairn_dump_course_blocks.py").read_text().rstrip("\n")


def test_secrets_generated_and_prefixed(rendered):
    for key in ("CAIRNLAKE_ADMIN_PASSWORD", "CAIRNLAKE_CLICKHOUSE_PASSWORD", "CAIRNLAKE_MYSQL_PASSWORD",
                "CAIRNLAKE_SUPERSET_ADMIN_PASSWORD"):
        assert len(rendered.config[key]) == 24 and rendered.config[key].isalnum(), key
    ours = [key for key in rendered.config if "CAIRN" in key]
    assert all(key.startswith("CAIRNLAKE_") for key in ours), ours


def test_compose_files_follow_the_compose_specification(rendered):
    run([TUTOR_BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
         *[rendered.env / path for path in COMPOSE_FILES]])


def test_kubernetes_manifests_validate_strictly(rendered, tmp_path):
    out = tmp_path / "kustomized.yml"
    out.write_text(rendered.kustomized)
    done = run([TUTOR_BIN / "kubernetes-validate", "--strict", out], check=False, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    deployments = rendered.objects_of("Deployment")
    assert ("cairnlake-serve" in deployments) == rendered.embedded
    assert ("cairnlake-superset" in deployments) == rendered.settings["CAIRNLAKE_RUN_SUPERSET"]
    sidecar = rendered.settings["CAIRNLAKE_K8S_COLLECTOR"] == "sidecar"
    for service in ("lms", "lms-worker", "cms", "cms-worker"):
        pod = deployments[service]["spec"]["template"]["spec"]
        names = [c["name"] for c in pod.get("initContainers", [])]
        assert ("cairnlake-collector" in names) == sidecar, service
        if sidecar:
            app = next(c for c in pod["containers"] if c["name"] == service)
            assert {"mountPath": "/openedx/data/logs", "name": "cairnlake-tracking-logs"} in app["volumeMounts"]
            assert any(v["name"] == "cairnlake-tracking-logs" and "emptyDir" in v for v in pod["volumes"])
    daemonsets = rendered.objects_of("DaemonSet")
    assert ("cairnlake-collector" in daemonsets) == (not sidecar)
    if not sidecar:
        pod = daemonsets["cairnlake-collector"]["spec"]["template"]["spec"]
        assert pod["volumes"][1]["hostPath"]["path"] == "/var/log/pods"
        assert "serviceAccountName" not in pod  # no cluster API access needed


def test_dockerfile_passes_hadolint(rendered):
    run([TUTOR_BIN / "hadolint", rendered.env / "plugins/cairnlake/build/cairnlake/Dockerfile"])
    dockerfile = (rendered.env / "plugins/cairnlake/build/cairnlake/Dockerfile").read_text()
    assert ("requirements-superset.lock" in dockerfile) == rendered.settings["CAIRNLAKE_RUN_SUPERSET"]
    repository = rendered.settings.get("CAIRNLAKE_REPOSITORY")
    if repository:
        assert f"ADD --keep-git-dir=false {repository}#v0.1.0 /" in dockerfile
    else:
        assert "FROM python AS cairn-src" in dockerfile and "tutor mounts add /path/to/cairn" in dockerfile
    # Everything the image copies from Cairn's source exists in this repository (its source).
    copied = [path for line in dockerfile.splitlines() if line.startswith("COPY --from=cairn-src")
              for path in line.split()[2:-1]]
    assert "/requirements.lock" in copied and "/cairn" in copied
    for path in copied:
        assert (PROJECT_ROOT / path.lstrip("/")).exists(), path


def test_rendered_python_and_shell_parse(rendered):
    for path in rendered.env.rglob("plugins/cairnlake/**/*.py"):
        compile(path.read_text(), str(path), "exec")
    run(["sh", "-n", rendered.env / "plugins/cairnlake/apps/cairn/serve.sh"])


@pytest.fixture(scope="module")
def captured(rendered) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Every cairnlake init task and do-command, captured for local, dev and k8s."""
    commands = {"init": ["init", "--limit=cairnlake"], **{name: [name, *args] for name, args in DO_COMMANDS.items()}}
    # dev runs the same scripts as local with other compose files: its init is enough.
    runs = [(mode, name) for mode in ("local", "k8s") for name in commands] + [("dev", "init")]
    found = capture(rendered.root, [[mode, "do", *commands[name]] for mode, name in runs])
    jobs: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for (mode, name), started in zip(runs, found):
        parse = k8s_job if mode == "k8s" else compose_job
        jobs.setdefault(mode, {})[name] = [parse(job.get("manifest") or job.get("argv")) for job in started]
    return jobs


def test_every_job_service_exists_in_compose_and_kubernetes(rendered, captured):
    compose_jobs = set(rendered.compose("local/docker-compose.jobs.yml")["services"])
    k8s_jobs = set(rendered.objects_of("Job"))
    assert {"cairnlake-job", "cairnlake-openedx-job"} <= compose_jobs and {"cairnlake-job", "cairnlake-openedx-job"} <= k8s_jobs
    init = [service for service, _ in captured["local"]["init"]]
    assert init == ["mysql-job", "cairnlake-job", "cairnlake-openedx-job", "cairnlake-job"]
    for mode, commands in captured.items():
        for name, jobs in commands.items():
            assert jobs, (mode, name)
            for service, script in jobs:
                job = service if mode != "k8s" else service.rsplit("-", 1)[0]
                assert job in compose_jobs and job in k8s_jobs, (mode, name, job)
                run(["sh", "-n", "-c", script])
    # The same scripts on every platform (k8s names its Jobs with a timestamp).
    assert [s for _, s in captured["local"]["cairnlake-createuser"]] == [s for _, s in captured["k8s"]["cairnlake-createuser"]]


def test_do_commands_refuse_bad_input_with_one_line(rendered):
    cases = [
        (["cairnlake-createuser", "bob", "--email", "bob@example.org", "-c", "not a course"], "is not a course key"),
        (["cairnlake-createuser", "bob;rm", "--email", "bob@example.org", "--admin"], "is not a user name"),
        (["cairnlake-createuser", "bob", "--email", "bob@example.org"], "give at least one --course-id"),
        (["cairnlake-migrate", "--dry-run", "--fake"], "choose one of --dry-run and --fake"),
        (["cairnlake-backfill", "--path", "relative/log"], "give an absolute path"),
    ]
    results = capture_results(rendered.root, [["local", "do", *args] for args, _ in cases])
    for (args, message), result in zip(cases, results):
        assert result["exit"] == 2 and not result["jobs"], (args, result)
        assert message in result["stderr"] and "Traceback" not in result["stderr"], (args, result["stderr"])


# --- Executing the rendered scripts against a real `cairn serve` and MariaDB -------------------

MYSQL_DB = "cairnlake_tutor_test"


def mysql_root(sql: str) -> None:
    run(["mysql", "-u", "root", "-h", "127.0.0.1", "-e", sql])


@pytest.fixture(scope="module")
def live(tutor_venv, tmp_path_factory):
    """The embedded matrix point rendered for this machine (MySQL on 127.0.0.1), a real
    `cairn serve` on its lake, and folders standing for the containers' mounts."""
    root = tmp_path_factory.mktemp("tutor-live")
    settings = dict(MATRIX["embedded-nosuperset-node"], MYSQL_HOST="127.0.0.1", MYSQL_ROOT_PASSWORD="",
                    OPENEDX_MYSQL_DATABASE=MYSQL_DB, CAIRNLAKE_MYSQL_USERNAME="cairnlake_ro_test")
    env_dir = render(root, settings)
    cairn_env = dict(line.split("=", 1) for line in (env_dir / "plugins/cairnlake/apps/cairn/cairn.env")
                     .read_text().splitlines() if line and not line.startswith("#"))
    mounts = {"/data": root / "lake", "/cairnlake-courses": root / "courses", "/openedx-data": root / "openedx-data"}
    for folder in mounts.values():
        folder.mkdir()
    (mounts["/openedx-data"] / "lms" / "logs").mkdir(parents=True)
    # The Open edX MySQL tables, as the LMS's migrations would have made them.
    mysql_root(f"DROP DATABASE IF EXISTS {MYSQL_DB}; DROP USER IF EXISTS 'cairnlake_ro_test'@'%'")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    environment.update(cairn_env, CAIRN_DATA_DIR=str(mounts["/data"]), PATH=f"{CAIRN_BIN}{os.pathsep}{os.environ['PATH']}")
    run([CAIRN_BIN / "cairn", "--set", "mysql.user=root", "--set", "mysql.password=", "mysql", "create-tables"],
        dict(environment, CAIRN_DATA_DIR=str(root / "scratch")))
    served = start_server(mounts["/data"], env=dict(environment, CAIRN_MYSQL_ENABLED="false"))
    try:
        yield root, mounts, environment, served
    finally:
        served.process.terminate()
        served.process.wait(timeout=60)
        mysql_root(f"DROP DATABASE IF EXISTS {MYSQL_DB}; DROP USER IF EXISTS 'cairnlake_ro_test'@'%'")


def execute(live, script: str) -> subprocess.CompletedProcess:
    """Run a captured script with `sh -e -c` as the job container would, its mount points mapped to folders."""
    root, mounts, environment, _ = live
    for mount, folder in mounts.items():
        script = script.replace(f"{mount}/", f"{folder}/").replace(f"{mount} ", f"{folder} ")
    return run(["sh", "-e", "-c", script], environment, check=False, timeout=600)


def test_rendered_init_and_do_scripts_run_against_cairn_serve(live):
    root, mounts, environment, served = live
    names = [name for name in DO_COMMANDS if name not in ("cairnlake-import-dashboards", "cairnlake-import-courses")]
    found = capture(root, [["local", "do", "init", "--limit=cairnlake"]]
                    + [["local", "do", name, *DO_COMMANDS[name]] for name in names])
    init = [compose_job(job["argv"]) for job in found[0]]
    jobs = {name: compose_job(started[0]["argv"])[1] for name, started in zip(names, found[1:])}
    assert [service for service, _ in init] == ["mysql-job", "cairnlake-job", "cairnlake-openedx-job", "cairnlake-job"]

    # 1. mysql: the read-only account may read the Open edX tables and nothing else.
    done = execute(live, init[0][1])
    assert done.returncode == 0, done.stderr
    password = yaml_file(root / "config.yml")["CAIRNLAKE_MYSQL_PASSWORD"]
    denied = run(["mysql", "-u", "cairnlake_ro_test", f"--password={password}", "-h", "127.0.0.1", MYSQL_DB,
                  "-e", "INSERT INTO auth_user (username) VALUES ('x')"], check=False)
    assert denied.returncode != 0 and "denied" in denied.stderr
    run(["mysql", "-u", "cairnlake_ro_test", f"--password={password}", "-h", "127.0.0.1", MYSQL_DB,
         "-e", "SELECT count(*) FROM auth_user"])

    # 2. datalake: migrations, the services' admin account, the MySQL tables through that account.
    done = execute(live, init[1][1])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    admin = served.client(user="cairnlake", password=yaml_file(root / "config.yml")["CAIRNLAKE_ADMIN_PASSWORD"])
    assert admin.query("SELECT count() FROM system.tables WHERE database = 'openedx' AND name = 'course_blocks'").result_rows == [(1,)]

    # 3. courses: the LMS dump cannot run here (no LMS): its output is made from an OLX export
    #    with the same record writer, then the rendered import task loads it.
    sys.path.insert(0, str(PROJECT_ROOT / "cairn/sources/lms"))
    from cairn.sources.course_structure import parse_olx
    from cairn_dump_course_blocks import write_records
    with open(mounts["/cairnlake-courses"] / "blocks.jsonl", "w") as out:
        assert write_records(parse_olx(DEMO_COURSE), out) > 100
    done = execute(live, init[3][1])
    assert done.returncode == 0, done.stderr
    assert admin.query("SELECT uniqExact(course_id), count() > 100 FROM openedx.course_blocks").result_rows == [(1, 1)]

    # 4. backfill (default paths: the LMS tracking logs the job sees), with events of two courses.
    log = mounts["/openedx-data"] / "lms" / "logs" / "tracking.log"
    lines = TRACKING_LOG.read_text().splitlines()
    log.write_text("\n".join(lines + [line.replace(DEMO, OTHER) for line in lines]) + "\n")
    done = execute(live, jobs["cairnlake-backfill"])
    assert done.returncode == 0, done.stderr
    counts = dict(admin.query("SELECT course_id, count() FROM openedx.events GROUP BY course_id").result_rows)
    assert counts[DEMO] > 0 and counts[OTHER] == counts[DEMO]

    # 5. a user of one course sees only that course; deleted, it cannot log in.
    done = execute(live, jobs["cairnlake-createuser"])
    assert done.returncode == 0, done.stderr
    alice = served.client(user="alice", password="alice-password-1")
    assert alice.query("SELECT course_id, count() FROM openedx.events GROUP BY course_id").result_rows == [(DEMO, counts[DEMO])]
    for name in ("cairnlake-migrate", "cairnlake-status"):
        done = execute(live, jobs[name])
        assert done.returncode == 0, (name, done.stderr)
    assert "events" in execute(live, jobs["cairnlake-status"]).stdout
    done = execute(live, jobs["cairnlake-deleteuser"])
    assert done.returncode == 0, done.stderr
    with pytest.raises(Exception, match="(?i)auth|401|516"):
        served.client(user="alice", password="alice-password-1").query("SELECT 1")


def test_beside_tutor_cairn(tutor_venv, tmp_path):
    """The existing tutor-cairn plugin installed too: both listed; enabling ours renders none of theirs."""
    # tutor-cairn==22.0.0 is pinned in requirements-tutor.lock (it needs only tutor>=22,<23).
    env = tutor_env(tmp_path)
    listed = run([TUTOR_BIN / "tutor", "plugins", "list"], env).stdout
    assert "cairnlake" in listed and any(line.split()[:1] == ["cairn"] for line in listed.splitlines())
    env_dir = render(tmp_path, {})
    assert (env_dir / "plugins/cairnlake").is_dir() and not (env_dir / "plugins/cairn").exists()
    compose = yaml_file(env_dir / "local/docker-compose.yml")["services"]
    assert "cairnlake-serve" in compose and not [s for s in compose if s.startswith("cairn-")]
    config = yaml_file(tmp_path / "config.yml")
    assert not [key for key in config if key.startswith("CAIRN_")]
    # Both enabled: each renders its own, and ours warns that two analytics stacks run.
    run([TUTOR_BIN / "tutor", "plugins", "enable", "cairn"], env)
    saved = run([TUTOR_BIN / "tutor", "config", "save"], env)
    assert (env_dir / "plugins/cairn").is_dir() and (env_dir / "plugins/cairnlake").is_dir()
    assert "both enabled" in saved.stdout + saved.stderr


def test_image_build_uses_the_project_checkout(tutor_venv, tmp_path):
    """`tutor mounts add <this checkout>` makes it the image's source; `tutor images build` builds our Dockerfile."""
    render(tmp_path, {})
    env = tutor_env(tmp_path)
    run([TUTOR_BIN / "tutor", "mounts", "add", PROJECT_ROOT], env)
    [build] = capture(tmp_path, [["images", "build", "cairnlake"]])[0]
    argv = build["argv"]
    assert argv[:3] == ["docker", "buildx", "build"]
    assert f"--build-context=cairn-src={PROJECT_ROOT}" in argv and "--tag=docker.io/cairnlake:0.1.0" in argv
    assert argv[-1] == str(tmp_path / "env/plugins/cairnlake/build/cairnlake")
