"""Checkpoint stores the agent saves its progress to, so that a restarted agent can resume.

A store maps string keys to JSON values inside one *namespace*. Every trial gets its own namespace
(``<scenario>/<trial seed>``, cleared when the trial starts), so trials never see each other's
checkpoints even when they share one SQLite file or one Redis server. Values are JSON only (no pickle):
what an agent reads back is exactly what it wrote, on every backend, in this process or another one.

Backends: ``MemoryStore`` (in-process), ``SQLiteStore`` (one table keyed by ``(namespace, key)``, WAL
journal, each save its own committed transaction: it survives a SIGKILL of the process that wrote it)
and ``RedisStore`` (one hash per namespace; needs the ``redis`` extra). ``StateSpec`` names one from a
scenario's ``state`` setting: ``"memory"``, ``"sqlite"``, ``"sqlite:PATH"`` or ``"redis://HOST:PORT/DB"``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..errors import AgentOpsError, ConfigError

if TYPE_CHECKING:
    from .context import TrialContext

StateKind = Literal["memory", "sqlite", "redis"]
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
REDIS_PREFIX = "agentops:checkpoints:"  # Redis key of a namespace's hash: prefix + namespace


class CheckpointError(AgentOpsError, TypeError):
    """A checkpoint key or value the store cannot keep (values must be JSON data)."""


@runtime_checkable
class CheckpointStore(Protocol):
    """What every checkpoint backend offers the agent: JSON values under string keys, in one namespace."""

    namespace: str

    def save(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data) under ``key``, durably before returning."""

    def load(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` when there is none."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""

    def keys(self) -> list[str]:
        """The keys of this namespace, sorted."""

    def clear(self) -> None:
        """Remove every key of this namespace (and only this namespace)."""

    def namespaced(self, namespace: str) -> CheckpointStore:
        """A store for ``namespace`` on the same storage (same file, same server)."""

    def close(self) -> None:
        """Release the connection (a no-op for the in-memory store)."""


# --- JSON values only --------------------------------------------------------------------------------


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CheckpointError(f"{where}={value!r} must be JSON data: NaN and infinity are not JSON")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{where} has key {k!r}: JSON object keys must be strings")
            _check_json(item, f"{where}[{k!r}]")
        return
    raise CheckpointError(f"{where}={value!r} must be JSON data (dict with str keys, list, str, int, float, "
                          f"bool or None), got {type(value).__name__}; checkpoints are JSON, never pickled")


def encode(key: str, value: Any) -> str:
    """``value`` as JSON text, after checking ``key`` and that ``value`` round-trips unchanged."""
    check_key(key)
    _check_json(value, f"value of {key!r}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def check_key(key: Any) -> str:
    """``key`` if it is a non-empty string (what every backend takes as a key)."""
    if not isinstance(key, str) or not key:
        raise CheckpointError(f"key={key!r} must be a non-empty string")
    return key


def _namespace(namespace: Any) -> str:
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError(f"namespace={namespace!r} must be a non-empty string")
    return namespace


# --- in memory -----------------------------------------------------------------------------------------


class MemoryStore:
    """An in-process checkpoint store: JSON text per key, per namespace, shared by its ``namespaced`` views."""

    def __init__(self, namespace: str = "default", *, _data: dict[str, dict[str, str]] | None = None,
                 _lock: Any = None) -> None:
        self.namespace = _namespace(namespace)
        self._data: dict[str, dict[str, str]] = {} if _data is None else _data  # namespace -> key -> JSON
        self._lock = _lock or threading.Lock()

    def save(self, key: str, value: Any) -> None:
        """Store a checkpoint under ``key`` (as JSON text, so later mutation does not leak in)."""
        text = encode(key, value)
        with self._lock:
            self._data.setdefault(self.namespace, {})[key] = text

    def load(self, key: str, default: Any = None) -> Any:
        """The checkpoint under ``key``, or ``default``."""
        check_key(key)
        with self._lock:
            text = self._data.get(self.namespace, {}).get(key)
        return default if text is None else json.loads(text)

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""
        check_key(key)
        with self._lock:
            self._data.get(self.namespace, {}).pop(key, None)

    def keys(self) -> list[str]:
        """The keys of this namespace, sorted."""
        with self._lock:
            return sorted(self._data.get(self.namespace, {}))

    def clear(self) -> None:
        """Remove every key of this namespace (and only this namespace)."""
        with self._lock:
            self._data.pop(self.namespace, None)

    def namespaced(self, namespace: str) -> MemoryStore:
        """A store for ``namespace`` on the same storage."""
        return MemoryStore(namespace, _data=self._data, _lock=self._lock)

    def close(self) -> None:
        """Nothing to release: the data lives as long as the store."""

    def __repr__(self) -> str:
        return f"<MemoryStore namespace={self.namespace!r} keys={len(self.keys())}>"


# --- SQLite --------------------------------------------------------------------------------------------

_SCHEMA = """CREATE TABLE IF NOT EXISTS checkpoints (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID"""


class _SQLiteFile:
    """One connection to a checkpoint file, shared by the ``namespaced`` views (a lock serialises them)."""

    def __init__(self, path: str):
        self.path = path
        try:
            # autocommit (isolation_level=None): each statement is its own committed transaction
            self.conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit is in the WAL before save() returns, so it survives a killed process
            # (only a power loss can drop the last commits); FULL would also fsync every commit.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"state='sqlite:{path}' cannot be opened as a checkpoint database: {exc}") from exc
        self.lock = threading.Lock()

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.conn.execute(sql, args).fetchall()


class SQLiteStore:
    """Checkpoints in an SQLite file: one table keyed by ``(namespace, key)``, JSON text values.

    Every ``save`` is committed before it returns (WAL journal), so a checkpoint written just before the
    process is killed with SIGKILL is there when the restarted process opens the file.
    """

    def __init__(self, path: str | os.PathLike[str], namespace: str = "default", *, _file: _SQLiteFile | None = None):
        self.namespace = _namespace(namespace)
        self._file = _file or _SQLiteFile(os.fspath(path))
        self.path = self._file.path

    def save(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``; committed when this returns."""
        text = encode(key, value)
        self._file.execute("INSERT OR REPLACE INTO checkpoints (namespace, key, value) VALUES (?, ?, ?)",
                           (self.namespace, key, text))

    def load(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        check_key(key)
        rows = self._file.execute("SELECT value FROM checkpoints WHERE namespace = ? AND key = ?",
                                  (self.namespace, key))
        return json.loads(rows[0][0]) if rows else default

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""
        check_key(key)
        self._file.execute("DELETE FROM checkpoints WHERE namespace = ? AND key = ?", (self.namespace, key))

    def keys(self) -> list[str]:
        """The keys of this namespace, sorted."""
        rows = self._file.execute("SELECT key FROM checkpoints WHERE namespace = ? ORDER BY key",
                                  (self.namespace,))
        return [r[0] for r in rows]

    def clear(self) -> None:
        """Remove every key of this namespace (and only this namespace)."""
        self._file.execute("DELETE FROM checkpoints WHERE namespace = ?", (self.namespace,))

    def namespaced(self, namespace: str) -> SQLiteStore:
        """A store for ``namespace`` on the same storage."""
        return SQLiteStore(self.path, namespace, _file=self._file)

    def close(self) -> None:
        """Close the file's connection (shared by every ``namespaced`` view of it)."""
        with self._file.lock:
            self._file.conn.close()

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r} namespace={self.namespace!r}>"


# --- Redis ---------------------------------------------------------------------------------------------


def _redis_module() -> Any:
    try:
        import redis
    except ImportError as exc:  # the optional extra is not installed
        raise ConfigError("state='redis://...' needs the redis package: pip install 'pytest-agentops[redis]'"
                          ) from exc
    return redis


class RedisStore:
    """Checkpoints on a Redis server: one hash per namespace (``agentops:checkpoints:<namespace>``).

    Each operation is one atomic Redis command; the server keeps the data when the agent's process dies.
    """

    def __init__(self, url: str, namespace: str = "default", *, _client: Any = None):
        self.namespace = _namespace(namespace)
        self.url = url
        self._owner = _client is None
        if _client is None:
            redis = _redis_module()
            try:
                _client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
            except ValueError as exc:
                raise ConfigError(f"state={url!r} must be a Redis URL such as 'redis://127.0.0.1:6379/0': "
                                  f"{exc}") from exc
        self._client = _client
        self._hash = REDIS_PREFIX + self.namespace

    def save(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON data) under ``key``."""
        self._client.hset(self._hash, key, encode(key, value))

    def load(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        check_key(key)
        raw = self._client.hget(self._hash, key)
        return default if raw is None else json.loads(raw)

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""
        check_key(key)
        self._client.hdel(self._hash, key)

    def keys(self) -> list[str]:
        """The keys of this namespace, sorted."""
        return sorted(k.decode() if isinstance(k, bytes) else k for k in self._client.hkeys(self._hash))

    def clear(self) -> None:
        """Remove every key of this namespace (and only this namespace)."""
        self._client.delete(self._hash)

    def namespaced(self, namespace: str) -> RedisStore:
        """A store for ``namespace`` on the same storage."""
        return RedisStore(self.url, namespace, _client=self._client)

    def close(self) -> None:
        """Release the connection."""
        if self._owner:
            self._client.close()

    def __repr__(self) -> str:
        return f"<RedisStore {self.url!r} namespace={self.namespace!r}>"


# --- choosing a backend --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateSpec:
    """Which checkpoint backend a scenario uses: ``kind`` and its ``target`` (file path or Redis URL).

    ``sqlite`` with no path means a fresh temporary file per campaign (removed when the campaign ends).
    """

    kind: StateKind = "memory"
    target: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("memory", "sqlite", "redis"):
            raise ConfigError(f"state kind={self.kind!r} must be 'memory', 'sqlite' or 'redis'")
        if not isinstance(self.target, str):
            raise ConfigError(f"state target={self.target!r} must be a string (a file path or a Redis URL)")
        if self.kind == "redis" and not self.target.startswith(_REDIS_SCHEMES):
            raise ConfigError(f"state={self.target!r} must be a Redis URL such as 'redis://127.0.0.1:6379/0'")
        if self.kind == "memory" and self.target:
            raise ConfigError(f"state='memory:{self.target}': the in-memory store takes no target")

    @classmethod
    def parse(cls, value: Any, name: str = "state") -> StateSpec:
        """``"memory"``, ``"sqlite"``, ``"sqlite:PATH"`` or a ``redis://`` URL (or a StateSpec) as a StateSpec."""
        if isinstance(value, StateSpec):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text == "memory":
                return cls("memory")
            if text == "sqlite":
                return cls("sqlite")
            if text.startswith("sqlite:") and text[len("sqlite:"):]:
                path = text[len("sqlite:"):]
                return cls("sqlite", path[2:] if path.startswith("//") else path)  # sqlite:///abs or sqlite:rel
            if text.startswith(_REDIS_SCHEMES):
                return cls("redis", text)
        raise ConfigError(f"{name}={value!r} must be 'memory', 'sqlite', 'sqlite:PATH' or a Redis URL "
                          "'redis://HOST:PORT/DB'")

    @property
    def durable(self) -> bool:
        """Whether checkpoints outlive the process that wrote them (what a SIGKILL crash needs)."""
        return self.kind != "memory"

    def __str__(self) -> str:
        return self.kind if not self.target else (self.target if self.kind == "redis" else f"sqlite:{self.target}")

    def open(self, namespace: str = "default") -> CheckpointStore:
        """A store on this backend for ``namespace`` (a temporary SQLite file needs ``CampaignState``)."""
        if self.kind == "memory":
            return MemoryStore(namespace)
        if self.kind == "sqlite":
            if not self.target:
                raise ConfigError("state='sqlite' without a path is a temporary file that only a campaign "
                                  "creates; open 'sqlite:PATH' instead")
            return SQLiteStore(self.target, namespace)
        return RedisStore(self.target, namespace)


class CampaignState:
    """The checkpoint storage of one campaign: opened when it starts, one namespace per trial, closed at the end."""

    def __init__(self, spec: StateSpec):
        self._tmpdir: str | None = None
        if spec.kind == "sqlite" and not spec.target:
            self._tmpdir = tempfile.mkdtemp(prefix="agentops-state-")
            spec = StateSpec("sqlite", os.path.join(self._tmpdir, "checkpoints.sqlite3"))
        self.spec = spec  # concrete: a child process opens exactly this
        self._root = spec.open("campaign")

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


def trial_state(campaign: CampaignState, ctx: TrialContext) -> TrialStore:
    """The agent's store for this trial: its own emptied namespace, traced, closed to an ended trial."""
    return TrialStore(campaign.trial_store(ctx.scenario, ctx.seed), ctx.trace.add, ctx.check_alive)
