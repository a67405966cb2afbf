"""Import a module of the plugin's as soon as a module of someone else's is imported (numpy's stand-ins once
numpy's ``random`` is), so that a process which never imports that module does not pay for ours."""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from ..errors import hide_own_frames

__tracebackhide__ = hide_own_frames

_LOCK = threading.Lock()


def after_import(watched: str, then_import: str) -> None:
    """Import ``then_import`` now if ``watched`` is already imported, else right after ``watched`` is first
    imported: before the ``import`` statement that loaded it returns (so before the importer can bind anything
    of it), in the thread that imported it."""
    with _LOCK:
        if watched not in sys.modules:
            sys.meta_path.insert(0, _Watch(watched, then_import))
            return
    importlib.import_module(then_import)


def catch_up(watched: str, then_import: str) -> bool:
    """Import ``then_import`` if ``watched`` was imported without it (past the watch: an import hook ahead of it
    on ``sys.meta_path`` that finds modules itself, a watch removed, ours failing); True if it had to."""
    if watched not in sys.modules or then_import in sys.modules:
        return False
    importlib.import_module(then_import)
    return True


class _Watch:
    """On ``sys.meta_path`` until ``watched`` is loaded: the spec it finds has a loader that runs ours after its own.
    (A finder and a loader by what they have, not ``importlib.abc``'s classes: that module brings
    ``importlib.resources`` and ``tempfile``, ~10 ms of an isolated agent's start-up.)"""

    def __init__(self, watched: str, then_import: str):
        self.watched = watched
        self.then_import = then_import

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != self.watched:
            return None
        # (left on ``sys.meta_path`` until the module is loaded: ``importlib.util.find_spec`` asks without loading)
        spec = _find(self, fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenImport(spec.loader, self)
        return spec

    def __repr__(self) -> str:
        return f"<pytest_agentops: import {self.then_import} after {self.watched}>"


def _find(watch: _Watch, fullname: str, path: Any, target: ModuleType | None) -> ModuleSpec | None:
    """The spec the other finders give (the import system's own search)."""
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        if finder is watch or find_spec is None:
            continue
        spec = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


class _ThenImport:
    """The watched module's own loader, then ``then_import``; the module keeps its own loader as ``__loader__``.

    The watch leaves ``sys.meta_path`` as the module is loaded, and comes back if loading it fails."""

    def __init__(self, loader: Any, watch: _Watch):
        self.loader = loader
        self.watch = watch

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with _LOCK:
            if self.watch in sys.meta_path:
                sys.meta_path.remove(self.watch)
        try:
            self.loader.exec_module(module)
        except BaseException:  # (not imported: watched for again)
            with _LOCK:
                if self.watch not in sys.meta_path:
                    sys.meta_path.insert(0, self.watch)
            raise
        # (the module is in ``sys.modules``, not yet an attribute of its package: other threads importing it wait
        # for this import, ours included, to finish, so none reaches its functions before ours are in)
        with contextlib.suppress(Exception):  # ours failing (a ``MemoryError``) must not fail the module's own
            importlib.import_module(self.watch.then_import)  # import: ``catch_up`` finds it missing and says so
