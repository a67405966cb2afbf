"""The settings package resolves its names lazily, and the metrics its modules declare keep one order."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_agentops import settings
from pytest_agentops.metrics import BUILTIN_ORDER, REGISTRY, builtin_metrics


def _run(program: str) -> str:
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_agent_module_importing_tool_loads_settings_tools_alone():
    """``from pytest_agentops import tool`` (an isolated agent's module, in every attempt's process) imported every
    module of settings (faults, model, trajectory, their metrics: ~60 ms). Now ``settings.tools`` alone; the other
    names of ``pytest_agentops.settings`` are still there, each loaded when asked for."""
    loaded = _run("import sys\nfrom pytest_agentops import tool\n"
                  "print(sorted(m for m in sys.modules if m.startswith('pytest_agentops.settings.')))")
    assert loaded == "['pytest_agentops.settings.tools']"
    for name in settings.__all__:
        assert getattr(settings, name) is not None
    assert set(settings.__all__) <= set(dir(settings))
    with pytest.raises(AttributeError, match="no attribute 'Fault'"):
        settings.Fault  # noqa: B018


def test_every_builtin_metric_has_its_place_in_the_order():
    assert set(BUILTIN_ORDER) == set(builtin_metrics())
    assert tuple(REGISTRY)[:len(BUILTIN_ORDER)] == BUILTIN_ORDER


@pytest.mark.parametrize("first", ["layers", "trajectory", "model", "injection", "run", "tools"])
def test_the_metrics_keep_their_order_whichever_module_declaring_them_loads_first(first):
    """The package imported every settings module in one order, so the metrics they declare (a campaign's metrics,
    its reports, listings) came in one order. Loaded lazily, a module may come first that came later before: the
    order is ``metrics.BUILTIN_ORDER`` still, and a metric of the user's, registered before the package's own
    were all declared, comes after them."""
    order = _run(f"""
import pytest_agentops.settings.{first}
from pytest_agentops.metrics import MetricDef, REGISTRY, register_metric
register_metric(MetricDef("users_own", "rate", lambda r: (1, 1), "a user's metric"))
import pytest_agentops.expect
print(",".join(REGISTRY))
""")
    assert order.split(",") == [*BUILTIN_ORDER, "users_own"]
