"""``RedisStore``: checkpoints on a Redis server, one hash per namespace (needs the ``redis`` extra)."""

from __future__ import annotations

import json
from typing import Any

from ...errors import ConfigError, hide_own_frames
from .protocol import check_key, check_namespace, encode

__tracebackhide__ = hide_own_frames

REDIS_PREFIX = "agentops:checkpoints:"  # Redis key of a namespace's hash: prefix + namespace


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
        self.namespace = check_namespace(namespace)
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


