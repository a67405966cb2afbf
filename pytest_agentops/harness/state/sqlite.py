"""``SQLiteStore``: checkpoints in an SQLite file that survive a SIGKILL of the process that wrote them."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

from ...errors import ConfigError, hide_own_frames
from .protocol import check_key, check_namespace, encode

__tracebackhide__ = hide_own_frames

_SCHEMA = """CREATE TABLE IF NOT EXISTS checkpoints (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID"""


def _to_wal(conn: sqlite3.Connection, within_s: float = 30.0) -> None:
    """``PRAGMA journal_mode=WAL``, again while another process is switching the same new file (SQLite answers
    "database is locked" at once then, without waiting its busy timeout: seen when two processes open one store)."""
    import select

    from ...vtime.real import real_monotonic

    deadline = real_monotonic() + within_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or real_monotonic() > deadline:
                raise
            select.select([], [], [], 0.01)  # (real time: a trial's ``time.sleep`` may be virtual)


class _SQLiteFile:
    """One connection to a checkpoint file, shared by the ``namespaced`` views (a lock serialises them)."""

    def __init__(self, path: str):
        self.path = path
        try:
            # autocommit (isolation_level=None): each statement is its own committed transaction
            self.conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            _to_wal(self.conn)
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
        self.namespace = check_namespace(namespace)
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


