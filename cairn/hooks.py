"""Cairn's extension points, each named and documented in one place.

In the manner of Tutor's ``hooks/catalog.py``: a module that extends Cairn adds to a
hook declared here; the code that reads a hook only ever asks this module. Four hooks
exist:

``STATUS_SECTIONS``    sections of ``cairn status``
``MIGRATION_FOLDERS``  folders of extra ``.sql`` migrations
``SETTINGS``           extra configuration settings
``CLI_COMMANDS``       extra ``cairn`` commands

The built-in extensions live in the domain modules listed in ``PROVIDERS``: they add
to the hooks when imported, and ``load_providers()`` imports them before a hook is
read. Nothing here imports the rest of Cairn at import time, so any module may import
``cairn.hooks``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Hook(Generic[T]):
    """A named, documented list of callbacks or values that extensions add to."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc
        self._items: list[T] = []

    def add(self, item: T) -> T:
        """Add ``item`` once (adding it again changes nothing); returns it, so it works as a decorator."""
        if item not in self._items:
            self._items.append(item)
        return item

    def remove(self, item: T) -> None:
        """Take ``item`` out again (tests, plugins being unloaded)."""
        if item in self._items:
            self._items.remove(item)

    def items(self) -> list[T]:
        """What was added, in the order it was added."""
        return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items())

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __repr__(self) -> str:
        return f"<Hook {self.name}: {len(self._items)} item(s)>"


STATUS_SECTIONS: Hook[Callable[[Any, Any], dict]] = Hook("status_sections", """\
Sections of ``cairn status`` (and ``cairn status --json``), after engine, tables and migrations.

Each item is ``fn(engine, config) -> {"title": str, "rows": [{column: value, ...}, ...]}``,
optionally with ``"warnings": [str, ...]`` (printed after the rows, one line each) and
more keys for ``--json``; ``None`` when the section does not apply (nothing shown).
A section whose function raises is shown as one error row: a broken optional source
(MySQL down, no collector yet) never hides the rest of the status. Built-in sections:
the collectors (``cairn.ingest``), the datalake users (``cairn.serve.users``), the
Open edX MySQL copies (``cairn.sources.openedx_mysql``) and the data directory of the
embedded engine (``cairn.status``: free space, reserve, file modes).
""")

MIGRATION_FOLDERS: Hook[Any] = Hook("migration_folders", """\
Folders of extra ``.sql`` migrations, merged with Cairn's own in name order.

Items are paths (``str`` or ``Path``). Users have the same extension point without
code: the ``migrations_folders`` setting and ``cairn migrate --path``; a package that
ships its own tables and views (a Superset layer, a Tutor plugin) adds its folder here.
Migration names must be unique across folders.
""")

SETTINGS: Hook[Any] = Hook("settings", """\
Extra configuration settings (``cairn.config.Setting``), beside the built-in ``SETTINGS``.

A setting added here is read, validated and reported exactly like a built-in one:
TOML key, ``CAIRN_*`` environment variable, ``--set``, ``cairn config``. Add it
before the configuration is loaded (at import time of the extending module).
""")

CLI_COMMANDS: Hook[Callable[[Any], None]] = Hook("cli_commands", """\
Extra ``cairn`` commands: ``register(app)`` functions given the ``typer.Typer`` app.

The built-in command modules are imported explicitly, in data-flow order, by
``cairn.cli``; functions added here are called after them, in the order added.
""")

#: Modules that add Cairn's built-in extensions to the hooks when imported.
PROVIDERS: tuple[str, ...] = ("cairn.ingest.status", "cairn.serve.users", "cairn.sources.openedx_mysql",
                               "cairn.status", "cairn.superset.settings", "cairn.superset.status",
                               "cairn.serve.settings")

_loaded = False


def load_providers() -> None:
    """Import the modules of ``PROVIDERS`` once, so that their extensions are in the hooks."""
    global _loaded
    if _loaded:
        return
    for module in PROVIDERS:
        importlib.import_module(module)
    _loaded = True
