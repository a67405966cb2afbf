"""Root conftest: the repository's own test settings (the plugin itself loads through its entry point)."""

import gc
import os

import pytest
from hypothesis import settings

# A deterministic profile for CI: same examples every run, no deadline flakiness on shared machines.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session):
    """No cyclic garbage collection while the test modules (and the client SDKs, scipy, ...) are imported:
    the heap grows from ~50,000 to ~250,000 objects then, all of them kept, and the collector's full
    collections along the way (about 20, each walking the whole heap) found nothing and took ~3 s of
    each process's collection, ~6 s in each xdist worker on the loaded CI machine. The collector is back
    on, as it was, before the first test runs (tests/process_state.py checks it per test from there)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
