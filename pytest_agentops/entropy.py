"""A campaign seed from the operating system's entropy, for runs that give none.

A module of its own: the plugin draws the session seed at every start-up, also where no campaign runs, and
must not import ``seeding`` (hashing, JSON, ``stable_repr``) for it."""

from __future__ import annotations

import os

from .errors import hide_own_frames

__tracebackhide__ = hide_own_frames


def fresh_seed() -> int:
    """A new random campaign seed (printed, so that the run can be repeated)."""
    return int.from_bytes(os.urandom(4), "little")
