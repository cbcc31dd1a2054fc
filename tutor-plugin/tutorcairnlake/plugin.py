"""Tutor hooks of the `cairnlake` plugin: settings, image, templates, patches, init tasks, do-commands.

Named `cairnlake` (settings ``CAIRNLAKE_*``, services ``cairnlake-*``, data in
``data/cairnlake``) because `cairn` belongs to the existing tutor-cairn plugin: both may
be installed side by side.
"""

from __future__ import annotations

import os
from glob import glob
from importlib import resources

from tutor import hooks

from .__about__ import __version__
from .commands import DO_COMMANDS

PLUGIN = "cairnlake"
HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")

# Settings that operators may change (``tutor config save --set CAIRNLAKE_...``).
# Values are typed: booleans, integers and strings stay what they are in config.yml.
DEFAULTS: dict[str, object] = {
    "VERSION": __version__,
    "DOCKER_IMAGE": "{{ DOCKER_REGISTRY }}cairnlake:{{ CAIRNLAKE_VERSION }}",
    # Where the image gets Cairn's source: a git repository and ref, or (empty) a local
    # checkout added with `tutor mounts add /path/to/cairn`.
    "REPOSITORY": "",
    "REPOSITORY_VERSION": "v{{ CAIRNLAKE_VERSION }}",
    "PYTHON_IMAGE": "docker.io/python:3.11-slim-bookworm",
    "HOST": "analytics.{{ LMS_HOST }}",
    # "embedded": `cairn serve` on a persistent volume; "clickhouse": a ClickHouse server.
    "ENGINE": "embedded",
    "DATABASE": "openedx",
    "SERVE_PORT": 8123,
    "SERVE_WORKERS": 4,
    # The datalake account the plugin's services use (an admin of `cairn serve`).
    "ADMIN_USERNAME": "cairnlake",
    # ClickHouse server engine: run one here (RUN_CLICKHOUSE) or point at an external host.
    "RUN_CLICKHOUSE": True,
    "CLICKHOUSE_DOCKER_IMAGE": "docker.io/clickhouse/clickhouse-server:25.8",
    "CLICKHOUSE_HOST": "cairnlake-clickhouse",
    "CLICKHOUSE_HTTP_PORT": 8123,
    "CLICKHOUSE_SECURE": False,
    "CLICKHOUSE_USERNAME": "cairnlake",
    "CLICKHOUSE_CLUSTER": "",
    # Tracking-log collector. On Kubernetes: "sidecar" (a container in the LMS/CMS pods
    # and their workers, sharing the log folder) or "node" (a DaemonSet reading the
    # containers' logs on each node).
    "RUN_COLLECTOR": True,
    "K8S_COLLECTOR": "sidecar",
    "K8S_LOG_VOLUME_SIZE": "2Gi",
    "K8S_NODE_LOG_PATH": "/var/log/pods",
    "K8S_VOLUME_SIZE": "10Gi",
    "K8S_ARCHIVE_VOLUME_SIZE": "5Gi",
    "K8S_COURSES_VOLUME_SIZE": "1Gi",
    "K8S_CLICKHOUSE_VOLUME_SIZE": "20Gi",
    # Open edX MySQL tables: read through a read-only MySQL account made at init.
    "MYSQL_ENABLED": True,
    "MYSQL_MODE": "synced",
    "MYSQL_USERNAME": "cairnlake_ro",
    "IMPORT_COURSES_ON_INIT": True,
    # Superset (dashboards) behind Caddy on HOST.
    "RUN_SUPERSET": True,
    "SUPERSET_PORT": 8088,
    "SUPERSET_WORKERS": 2,
    "SUPERSET_ADMIN_USERNAME": "admin",
    "SUPERSET_ADMIN_EMAIL": "{{ CONTACT_EMAIL }}",
    # Empty: SQLite on the datalake volume; or postgresql://... for a database of your own.
    "SUPERSET_METADATA_URI": "",
    "SUPERSET_REDIS_DB": 6,
    "SUPERSET_DATA_CACHE_SECONDS": 10,
}

# Generated once per platform by `tutor config save` and kept in config.yml.
UNIQUE: dict[str, str] = {
    "ADMIN_PASSWORD": "{{ 24|random_string }}",
    "CLICKHOUSE_PASSWORD": "{{ 24|random_string }}",
    "MYSQL_PASSWORD": "{{ 24|random_string }}",
    "SUPERSET_ADMIN_PASSWORD": "{{ 24|random_string }}",
}

hooks.Filters.CONFIG_DEFAULTS.add_items([(f"CAIRNLAKE_{key}", value) for key, value in DEFAULTS.items()])
hooks.Filters.CONFIG_UNIQUE.add_items([(f"CAIRNLAKE_{key}", value) for key, value in UNIQUE.items()])


# The image: one Dockerfile, Superset's environment included when RUN_SUPERSET.
@hooks.Filters.IMAGES_BUILD.add()
def _build_image(images, config):
    images.append(("cairnlake", ("plugins", PLUGIN, "build", "cairnlake"), "{{ CAIRNLAKE_DOCKER_IMAGE }}", ()))
    return images


@hooks.Filters.IMAGES_PULL.add()
@hooks.Filters.IMAGES_PUSH.add()
def _pull_push_image(images, config):
    images.append(("cairnlake", "{{ CAIRNLAKE_DOCKER_IMAGE }}"))
    return images


# `tutor local launch` / `tutor dev launch` build it: it is on no public registry.
hooks.Filters.IMAGES_BUILD_REQUIRED.add_item("cairnlake")


def is_cairn_checkout(path: str) -> bool:
    """A folder named ``cairn``, or any folder holding Cairn's source (``cairn/`` and ``requirements.lock``)."""
    return (os.path.basename(os.path.normpath(path)) == "cairn"
            or (os.path.isfile(os.path.join(path, "cairn", "__init__.py"))
                and os.path.isfile(os.path.join(path, "requirements.lock"))))


# `tutor mounts add /path/to/cairn`: that checkout is the image's source (build context "cairn-src").
@hooks.Filters.IMAGES_BUILD_MOUNTS.add()
def _cairn_source_mount(mounts, path):
    if is_cairn_checkout(path):
        mounts.append(("cairnlake", "cairn-src"))
    return mounts


@hooks.Filters.APP_PUBLIC_HOSTS.add()
def _public_hosts(hosts, context_name):
    # Only Superset is published; on dev there is no Caddy, so its port is.
    hosts.append("{% if CAIRNLAKE_RUN_SUPERSET %}{{ CAIRNLAKE_HOST }}"
                 + (":{{ CAIRNLAKE_SUPERSET_PORT }}" if context_name == "dev" else "") + "{% endif %}")
    return hosts


hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(TEMPLATES)
hooks.Filters.ENV_TEMPLATE_TARGETS.add_items([
    (f"{PLUGIN}/build", "plugins"),
    (f"{PLUGIN}/apps", "plugins"),
])

for _path in sorted(glob(os.path.join(HERE, "patches", "*"))):
    with open(_path, encoding="utf-8") as _patch:
        hooks.Filters.ENV_PATCHES.add_item((os.path.basename(_path), _patch.read()))


def task(name: str) -> str:
    """The text of a task script in templates/cairnlake/tasks (rendered by Tutor when it runs)."""
    return resources.files("tutorcairnlake").joinpath("templates", PLUGIN, "tasks", name).read_text(encoding="utf-8")


# Init tasks, after Open edX's own (its MySQL tables must exist for the grants):
# the read-only MySQL account, the datalake (migrations, admin account, MySQL tables,
# Superset), then the course structure dumped by the LMS and imported.
# (Tutor loads this module in the plugin's context: `do init --limit=cairnlake` selects them.)
hooks.Filters.CLI_DO_INIT_TASKS.add_items([
    ("mysql", task("mysql-readonly.sh")),
    ("cairnlake", task("init-datalake.sh")),
    ("cairnlake-openedx", "{% if CAIRNLAKE_IMPORT_COURSES_ON_INIT %}" + task("dump-courses.sh") + "{% endif %}"),
    ("cairnlake", "{% if CAIRNLAKE_IMPORT_COURSES_ON_INIT %}" + task("import-courses.sh") + "{% endif %}"),
], priority=hooks.priorities.LOW)

hooks.Filters.CLI_DO_COMMANDS.add_items(DO_COMMANDS)


@hooks.Actions.PLUGINS_LOADED.add()
def _warn_beside_tutor_cairn() -> None:
    # Both may be enabled; they share no name, but two analytics stacks cost twice.
    from tutor import fmt

    if "cairn" in hooks.Filters.PLUGINS_LOADED.apply([]) and PLUGIN in hooks.Filters.PLUGINS_LOADED.apply([]):
        fmt.echo_alert("The plugins 'cairn' (tutor-cairn) and 'cairnlake' are both enabled: they run "
                       "separate analytics stacks. Disable one with `tutor plugins disable`.")
