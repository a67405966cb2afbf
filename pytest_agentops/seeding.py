"""Seeds: campaign seed -> trial seed -> the trial's named random streams.

One ``numpy.random.SeedSequence`` per campaign; trial ``i`` gets the child with spawn key ``(i,)`` (what
``SeedSequence.spawn`` would give), reduced to one 63-bit integer: the trial seed. Trial ``i`` is therefore
the same whatever the trial count or concurrency, and ``replay=i`` re-runs exactly it.

Inside a trial, every random draw comes from a named stream: an independent generator keyed by the trial
seed, the stream and, where a stream is drawn per item, keys such as the tool and the call index. Draws
are keyed by what they are for, never by the order in which the agent happens to reach the harness.
"""

from __future__ import annotations

import enum
import zlib

import numpy as np


class Stream(enum.IntEnum):
    """The independent random streams of one trial (the numbers are part of every trial's identity)."""

    TOOLS = 0  # tool-call faults: (block of calls, tool); the outage draw
    AGENT = 1  # env.rng, the agent's own randomness
    APPROVER = 2  # the simulated human's answers and latencies, one pair per confirmation asked
    MODEL = 3  # model-API faults (0, attempt), output perturbations (1, call), HTTP faults (2, host, request)
    DRIFT = 4  # context drift, per model call
    CRASH = 5  # whether and where the agent crashes
    BUDGET = 6  # the trial's user and that user's earlier spend today


def trial_seed(campaign_seed: int, index: int) -> int:
    """The seed of trial ``index`` of the campaign seeded ``campaign_seed``."""
    words = np.random.SeedSequence(campaign_seed, spawn_key=(index,)).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def fresh_seed() -> int:
    """A new random campaign seed (printed, so that the run can be repeated)."""
    return int(np.random.SeedSequence().generate_state(1, np.uint32)[0])


def stream(seed: int, which: Stream | int, *keys: int) -> np.random.Generator:
    """An independent numpy Generator for one purpose (``which``, with ``keys``) inside the trial ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(int(which), *keys))))


def name_key(name: str) -> int:
    """A stable integer key for a name (a tool, a host): the same in every process and run."""
    return zlib.crc32(name.encode())
