"""An isolated agent's module that imports ``numpy.random`` through an import hook of its own at its import (as an
instrumentation hook installed at import would), past the harness's watch for numpy (``process.after_import``)."""

import sys

from isolation_support import _NumpyPastTheWatch, imports_numpy_and_draws

#: before the hook: was numpy.random loaded already; after: were numpy's stand-ins (that is, not past the watch)
LOADED_BEFORE = "numpy.random" in sys.modules
_hook = _NumpyPastTheWatch()
sys.meta_path.insert(0, _hook)
try:
    import numpy.random  # noqa: F401
finally:
    sys.meta_path.remove(_hook)  # (imported into pytest's process too, where numpy is loaded already)

STAND_INS_AFTER = "pytest_agentops.process.numpy_random" in sys.modules


def agent(task, env):
    return (LOADED_BEFORE, STAND_INS_AFTER, imports_numpy_and_draws(task, env))
