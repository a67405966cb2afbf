"""Checkpoint stores the agent saves its progress to, so that a restarted agent can resume.

A store maps string keys to JSON values inside one *namespace*. Every trial gets its own namespace
(``<run>/<scenario>/<trial seed>``, ``run`` unique to the campaign: random, after the pytest-xdist worker
id), empty when the trial starts and emptied when it ends, so trials never see each other's checkpoints,
nor do two processes running the same scenario, even when they share one SQLite file or one Redis server.
A store that cannot be reached is a ``ConfigError`` when the campaign starts. Values are JSON only (no
pickle).

Backends: ``MemoryStore`` (in-process), ``SQLiteStore`` (one table keyed by ``(namespace, key)``, WAL
journal, each save its own committed transaction: it survives a SIGKILL of the process that wrote it)
and ``RedisStore`` (one hash per namespace; needs the ``redis`` extra). ``settings.layers.StateSpec`` names
one from a scenario's ``state`` setting: ``"memory"``, ``"sqlite"``, ``"sqlite:PATH"`` or
``"redis://HOST:PORT/DB"``; the state layer (``state/layer.py``) opens it for a campaign.
"""

from ...errors import CheckpointError, hide_own_frames
from ...settings.layers import StateSpec
from .campaign import CampaignState, TrialStore, open_store, run_identity
from .memory import MemoryStore
from .protocol import CheckpointStore, check_key, encode
from .redis import REDIS_PREFIX, RedisStore
from .sqlite import SQLiteStore

__tracebackhide__ = hide_own_frames

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
    "run_identity",
]
