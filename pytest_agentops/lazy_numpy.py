"""numpy, imported on first use and held from then on, for the modules an isolated agent's process loads but
whose numpy work is done in pytest's (the statistics, numpy's stand-ins' generators).

Held, not looked up again: numpy cannot be imported twice in one process, and pytester's in-process runs
drop what they imported from ``sys.modules`` while the plugin's functions they made live on."""

from __future__ import annotations

import functools
from types import ModuleType

from .errors import hide_own_frames

__tracebackhide__ = hide_own_frames


@functools.cache
def numpy() -> ModuleType:
    """The numpy module (imported now if this is its first use)."""
    import numpy as np

    return np
