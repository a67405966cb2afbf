"""A campaign's checkpoint storage (``CampaignState``: one namespace per trial), the agent's view of its
trial's store (``TrialStore``: traced, closed to an ended trial), and ``open_store`` for a ``StateSpec``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from ...errors import CheckpointError, ConfigError
from ...settings.layers import StateSpec
from .memory import MemoryStore
from .protocol import CheckpointStore
from .sqlite import SQLiteStore


def open_store(spec: StateSpec, namespace: str = "default") -> CheckpointStore:
    """A store on ``spec``'s backend for ``namespace`` (a temporary SQLite file needs ``CampaignState``)."""
    if spec.kind == "memory":
        return MemoryStore(namespace)
    if spec.kind == "sqlite":
        if not spec.target:
            raise ConfigError("state='sqlite' without a path is a temporary file that only a campaign "
                              "creates; open 'sqlite:PATH' instead")
        return SQLiteStore(spec.target, namespace)
    from .redis import RedisStore  # the redis package is an optional extra

    return RedisStore(spec.target, namespace)


class CampaignState:
    """The checkpoint storage of one campaign: opened when it starts, one namespace per trial, closed at the end."""

    def __init__(self, spec: StateSpec):
        self._tmpdir: str | None = None
        if spec.kind == "sqlite" and not spec.target:
            self._tmpdir = tempfile.mkdtemp(prefix="agentops-state-")
            spec = StateSpec("sqlite", os.path.join(self._tmpdir, "checkpoints.sqlite3"))
        self.spec = spec  # concrete: a child process opens exactly this
        self._root = open_store(spec, "campaign")

    @staticmethod
    def namespace(scenario: str, seed: int) -> str:
        """The namespace of the trial of ``scenario`` with this seed."""
        return f"{scenario}/{seed}"

    def trial_store(self, scenario: str, seed: int) -> CheckpointStore:
        """The trial's store, emptied: a trial starts with no checkpoints even in a persistent file."""
        store = self._root.namespaced(self.namespace(scenario, seed))
        store.clear()
        return store

    def close(self) -> None:
        """Close the backend's connection and remove a temporary checkpoint file."""
        self._root.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


class TrialStore:
    """The agent's view of its trial's store: every save and delete is traced as a ``checkpoint`` event.

    ``guard`` runs before each operation (the harness uses it to stop an abandoned or crashed attempt).
    """

    __slots__ = ("_event", "_guard", "inner")

    def __init__(self, inner: CheckpointStore, event: Callable[..., Any] | None = None,
                 guard: Callable[[], None] | None = None):
        self.inner = inner
        self._event = event
        self._guard = guard

    @property
    def namespace(self) -> str:
        return self.inner.namespace

    def _check(self) -> None:
        if self._guard is not None:
            self._guard()

    def save(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data) under ``key``, durably before returning."""
        self._check()
        self.inner.save(key, value)
        if self._event is not None:
            self._event("checkpoint", key, "saved")

    def load(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        self._check()
        return self.inner.load(key, default)

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        self._check()
        self.inner.delete(key)
        if self._event is not None:
            self._event("checkpoint", key, "deleted")

    def keys(self) -> list[str]:
        """The trial's checkpoint keys, sorted."""
        self._check()
        return self.inner.keys()

    def clear(self) -> None:
        """Remove all of the trial's checkpoints."""
        self._check()
        self.inner.clear()
        if self._event is not None:
            self._event("checkpoint", "*", "cleared")

    def namespaced(self, namespace: str) -> CheckpointStore:
        raise CheckpointError("an agent's store is its trial's namespace; it cannot open another one")

    def close(self) -> None:
        pass  # the harness closes the backend

    def __repr__(self) -> str:
        return f"<checkpoint store {self.inner!r}>"


