"""A package's names resolved on first use (PEP 562): the ``__getattr__`` and ``__dir__`` of the packages that
defer their imports, so that loading the plugin, or ``from pytest_agentops import tool`` in an isolated agent's
process, loads only what is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from .errors import hide_own_frames

__tracebackhide__ = hide_own_frames


def lazy_names(package: str, exports: Mapping[str, str], namespace: dict[str, Any], *,
               modules: bool = False) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: a name of ``exports`` (name -> its module, relative to the
    package) is imported when first asked for and kept in ``namespace`` (the package's globals: later lookups do
    not come here); with ``modules``, a name that is a module of the package is that module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            if modules:  # (``settings.faults``, as when the package imported its modules itself)
                try:
                    return importlib.import_module(f".{name}", package)
                except ModuleNotFoundError as exc:
                    if exc.name != f"{package}.{name}":
                        raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
