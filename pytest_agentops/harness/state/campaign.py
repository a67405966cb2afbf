"""A campaign's checkpoint storage (``CampaignState``: one namespace per trial, unique to the campaign), the
agent's view of its trial's store (``TrialStore``: traced, closed to an ended trial), and ``open_store`` for a
``StateSpec``."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from ...errors import CheckpointError, ConfigError, hide_own_frames
from ...settings.layers import StateSpec
from .memory import MemoryStore
from .protocol import CheckpointStore
from .sqlite import SQLiteStore

__tracebackhide__ = hide_own_frames


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


def run_identity() -> str:
    """A campaign's identity in checkpoint namespaces: 12 random hex digits (``os.urandom``), after the
    pytest-xdist worker id when there is one (``gw3-5f0c2a9e41d7``)."""
    token = secrets.token_hex(6)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").strip()
    return f"{worker}-{token}" if worker else token


class CampaignState:
    """The checkpoint storage of one campaign: opened (and checked to be reachable) when it starts, one
    namespace per trial, closed at the end.

    A trial's namespace is ``<run>/<scenario>/<trial seed>``, ``run`` being this campaign's identity
    (``run_identity``): two processes running the same scenario with the same seeds on one store (xdist
    workers, two CI jobs on one Redis) never see each other's checkpoints. A trial's namespace is emptied
    when the trial ends (``release``); whatever an ended trial left is emptied when the campaign closes, so
    nothing of a campaign stays in a shared store.
    """

    def __init__(self, spec: StateSpec, run: str | None = None):
        self._tmpdir: str | None = None
        if spec.kind == "sqlite" and not spec.target:
            self._tmpdir = tempfile.mkdtemp(prefix="agentops-state-")
            spec = StateSpec("sqlite", os.path.join(self._tmpdir, "checkpoints.sqlite3"))
        self.spec = spec  # concrete: a child process opens exactly this
        self.run = run_identity() if run is None else run
        self._open: set[str] = set()  # namespaces of trials not released yet
        self._lock = threading.Lock()
        try:
            self._root = open_store(spec, "campaign")
            self._root.keys()  # reachable now, or a ConfigError before any trial (a lazy client connects here)
        except ConfigError:
            self._remove_tmpdir()
            raise
        except Exception as exc:
            self._remove_tmpdir()
            raise ConfigError(f"state={str(spec)!r}: the checkpoint store cannot be reached ({type(exc).__name__}: "
                              f"{exc}); is the server running and the URL right?") from None  # (not chained:
            # pytest would show the frames' arguments, the URL with its password among them)

    def namespace(self, scenario: str, seed: int) -> str:
        """The namespace of the trial of ``scenario`` with this seed, in this campaign."""
        return f"{self.run}/{scenario}/{seed}"

    def trial_store(self, scenario: str, seed: int) -> CheckpointStore:
        """The trial's store, emptied: a trial starts with no checkpoints even in a persistent file."""
        store = self._root.namespaced(self.namespace(scenario, seed))
        with self._lock:
            self._open.add(store.namespace)
        store.clear()
        return store

    def release(self, store: CheckpointStore) -> None:
        """The trial is over: remove its checkpoints (they mean nothing to any later trial or run)."""
        store.clear()
        with self._lock:
            self._open.discard(store.namespace)

    def close(self) -> None:
        """Empty what trials left (a trial that never ended), close the backend's connection, and remove a
        temporary checkpoint file."""
        try:
            with self._lock:
                left, self._open = sorted(self._open), set()
            for namespace in left:
                self._root.namespaced(namespace).clear()
        finally:
            self._root.close()
            self._remove_tmpdir()

    def _remove_tmpdir(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


class TrialStore:
    """The agent's view of its trial's store: every save and delete is traced as a ``checkpoint`` event.

    ``guard`` runs before each operation (the harness uses it to stop an abandoned or crashed attempt).
    Given an ``opener`` instead of the store, the store is opened at its first use (``backend_of``): a trial whose
    agent never touches ``env.state`` costs its campaign no namespace to open, clear and release.
    """

    __slots__ = ("_event", "_guard", "_inner", "_opener", "_opening")

    def __init__(self, inner: CheckpointStore | None = None, event: Callable[..., Any] | None = None,
                 guard: Callable[[], None] | None = None, *, opener: Callable[[], CheckpointStore] | None = None):
        if (inner is None) == (opener is None):
            raise TypeError("TrialStore: give the store, or an opener for it, not both")
        self._inner = inner
        self._opener = opener
        # (the trial's own: opening a store may wait on a file or a server, which other trials need not wait for)
        self._opening = None if opener is None else threading.Lock()
        self._event = event
        self._guard = guard

    def _backend(self) -> CheckpointStore:
        """The trial's store in the campaign's backend (opened now if it was not yet): the harness's, not the
        agent's (``backend_of``): its ``namespaced`` opens any other trial's namespace, and a trial reading or
        writing another's checkpoints made its results depend on the concurrency."""
        inner = self._inner
        if inner is None:
            assert self._opening is not None and self._opener is not None
            with self._opening:
                if self._inner is None:
                    self._inner = self._opener()
                inner = self._inner
        return inner

    @property
    def opened(self) -> bool:
        """Whether the store has been opened (always, when it was given)."""
        return self._inner is not None

    @property
    def namespace(self) -> str:
        """The trial's namespace in the store (checked like every use: an ended trial's agent is refused)."""
        self._check()
        return self._backend().namespace

    def _check(self) -> None:
        if self._guard is not None:
            self._guard()

    def save(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data) under ``key``, durably before returning."""
        self._check()
        self._backend().save(key, value)
        if self._event is not None:
            self._event("checkpoint", key, "saved")

    def load(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        self._check()
        return self._backend().load(key, default)

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        self._check()
        self._backend().delete(key)
        if self._event is not None:
            self._event("checkpoint", key, "deleted")

    def keys(self) -> list[str]:
        """The trial's checkpoint keys, sorted."""
        self._check()
        return self._backend().keys()

    def clear(self) -> None:
        """Remove all of the trial's checkpoints."""
        self._check()
        self._backend().clear()
        if self._event is not None:
            self._event("checkpoint", "*", "cleared")

    def namespaced(self, namespace: str) -> CheckpointStore:
        raise CheckpointError("an agent's store is its trial's namespace; it cannot open another one")

    def close(self) -> None:
        pass  # the harness closes the backend

    def __repr__(self) -> str:  # (never opens the store: an agent's output holding it is shown after its trial)
        inner = self._inner
        return f"<checkpoint store {inner!r}>" if inner is not None else "<checkpoint store, not opened yet>"


def backend_of(store: TrialStore) -> CheckpointStore:
    """The store behind a trial's ``env.state``, for the harness (the state layer releases it, an isolated agent's
    process opens it by name): not an attribute of the agent's view."""
    return store._backend()
