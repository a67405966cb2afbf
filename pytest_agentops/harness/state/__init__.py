"""Checkpoint stores the agent saves its progress to, so that a restarted agent can resume.

A store maps string keys to JSON values inside one *namespace*. Every trial gets its own namespace
(``<scenario>/<trial seed>``, cleared when the trial starts), so trials never see each other's
checkpoints even when they share one SQLite file or one Redis server. Values are JSON only (no pickle).

Backends: ``MemoryStore`` (in-process), ``SQLiteStore`` (one table keyed by ``(namespace, key)``, WAL
journal, each save its own committed transaction: it survives a SIGKILL of the process that wrote it)
and ``RedisStore`` (one hash per namespace; needs the ``redis`` extra). ``settings.layers.StateSpec`` names
one from a scenario's ``state`` setting: ``"memory"``, ``"sqlite"``, ``"sqlite:PATH"`` or
``"redis://HOST:PORT/DB"``; the state layer (``state/layer.py``) opens it for a campaign.
"""

from ...errors import CheckpointError
from ...settings.layers import StateSpec
from .campaign import CampaignState, TrialStore, open_store
from .memory import MemoryStore
from .protocol import CheckpointStore, check_key, encode
from .redis import REDIS_PREFIX, RedisStore
from .sqlite import SQLiteStore

__all__ = [
    "REDIS_PREFIX",
    "CampaignState",
    "CheckpointError",
    "CheckpointStore",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "StateSpec",
    "TrialStore",
    "check_key",
    "encode",
    "open_store",
]
