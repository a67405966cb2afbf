"""Root conftest: the repository's own test settings (the plugin itself loads through its entry point)."""

import os

from hypothesis import settings

# A deterministic profile for CI: same examples every run, no deadline flakiness on shared machines.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
