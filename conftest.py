"""Root conftest: the repository's own test settings (the plugin itself loads through its entry point)."""

import compileall
import gc
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# A deterministic profile for CI: same examples every run, no deadline flakiness on shared machines.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_configure(config):
    """Compile the package and the tests once, before the processes the run starts (xdist workers, pytester
    runs, isolated trials) import them. With PYTHONDONTWRITEBYTECODE set, as on the CI machine, each of those
    processes compiled every module of the package it imported again (~50 ms of CPU, a few hundred times a
    run). The bytecode goes where Python itself puts it (``__pycache__``, ignored by git); a pycache prefix
    would not do: the processes would then look there for the installed libraries' bytecode too, and
    compile numpy and pytest from source instead."""
    if hasattr(config, "workerinput") or not sys.flags.dont_write_bytecode or sys.pycache_prefix:
        return
    here = Path(__file__).resolve().parent
    for tree in ("pytest_agentops", "tests"):
        compileall.compile_dir(here / tree, quiet=2)


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
