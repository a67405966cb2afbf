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
    assert sorted(settings.__all__) == sorted(settings._EXPORTS)
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


def test_a_module_of_settings_run_again_declares_its_metrics_again_as_pytesters_runs_do():
    """A review: pytester's in-process run drops the modules it loaded; the package's modules of settings were all
    loaded by the first import of any name, so none was ever dropped. Loaded one by one, ``settings.layers`` was
    dropped after a run and its metric refused as already registered at the next (a collection error). The
    package's own metrics are taken again; one of yours redefined is still refused."""
    order = _run("""
import sys
from pytest_agentops import Faults
kept = set(sys.modules)
from pytest_agentops.scenario import Scenario
for name in set(sys.modules) - kept:
    del sys.modules[name]
from pytest_agentops.scenario import Scenario
from pytest_agentops.errors import ConfigError
from pytest_agentops.metrics import MetricDef, REGISTRY, register_metric
register_metric(MetricDef("users_own", "rate", lambda r: (1, 1), "a user's metric"))
try:
    register_metric(MetricDef("users_own", "rate", lambda r: (0, 1), "another"))
except ConfigError:
    print("refused")
try:
    register_metric(MetricDef("budget_alert_rate", "rate", lambda r: (0, 1), "a user's, named as the package's"))
except ConfigError:
    print("refused")
print(",".join(REGISTRY))
""")
    assert order.splitlines() == ["refused", "refused", ",".join([*BUILTIN_ORDER, "users_own"])]


def test_the_modules_of_settings_are_its_attributes_as_when_it_imported_them_all():
    """A review: ``import pytest_agentops.settings as s; s.faults.Faults`` worked while the package imported its
    modules; lazily, a module is loaded when asked for by name."""
    shown = _run("import pytest_agentops.settings as s\nprint(s.faults.Faults.__name__, s.spend.__name__)")
    assert shown == "Faults pytest_agentops.settings.spend"
    assert settings.faults.Faults is settings.Faults
    with pytest.raises(AttributeError, match="no attribute 'nowhere'"):
        settings.nowhere  # noqa: B018
