"""``process.after_import``: a module of ours imported right after someone else's, with real files on sys.path."""

from __future__ import annotations

import sys
import textwrap

import pytest

from pytest_agentops.process.after_import import after_import, catch_up


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package ``pkg`` with a submodule ``pkg.sub`` and a module ``then_mod`` that records what it saw; both
    importable from ``tmp_path``, and forgotten again afterwards (modules and watches)."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub.py").write_text("import os\nFAIL = os.environ.get('SUB_FAILS') == '1'\n"
                                             "if FAIL:\n    raise ImportError('sub failed')\nVALUE = 1\n")
    (tmp_path / "then_mod.py").write_text(textwrap.dedent("""
        import os
        import sys
        import pkg
        if os.environ.get("THEN_FAILS") == "1":
            raise MemoryError("ours failed")
        sub = sys.modules["pkg.sub"]  # (loaded; its package's attribute comes once its import returns)
        SAW = (sub.VALUE, type(sub.__loader__).__name__, hasattr(pkg, "sub"))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    meta_path = list(sys.meta_path)
    yield tmp_path
    sys.meta_path[:] = meta_path
    for name in ("pkg", "pkg.sub", "then_mod"):
        sys.modules.pop(name, None)


def _watches() -> list[str]:
    return [repr(f) for f in sys.meta_path if "then_mod" in repr(f)]


def test_the_module_is_imported_before_the_import_that_loaded_the_watched_one_returns(package):
    after_import("pkg.sub", "then_mod")
    assert "then_mod" not in sys.modules and len(_watches()) == 1
    from pkg import sub  # noqa: F401  (the import that triggers it)

    assert sys.modules["then_mod"].SAW == (1, "SourceFileLoader", False)  # ran inside the import; its own loader
    assert _watches() == []


def test_a_module_already_imported_brings_ours_at_once(package):
    import pkg.sub  # noqa: F401

    after_import("pkg.sub", "then_mod")
    assert sys.modules["then_mod"].SAW[0] == 1 and _watches() == []


def test_asking_for_the_spec_without_loading_leaves_the_watch(package):
    import importlib.util

    after_import("pkg.sub", "then_mod")
    assert importlib.util.find_spec("pkg.sub") is not None
    assert "then_mod" not in sys.modules and len(_watches()) == 1
    import pkg.sub  # noqa: F401

    assert sys.modules["then_mod"].SAW[0] == 1 and _watches() == []


def test_a_watched_import_that_fails_is_watched_for_again(package, monkeypatch):
    after_import("pkg.sub", "then_mod")
    monkeypatch.setenv("SUB_FAILS", "1")
    with pytest.raises(ImportError, match="sub failed"):
        import pkg.sub
    assert "then_mod" not in sys.modules and len(_watches()) == 1
    monkeypatch.setenv("SUB_FAILS", "0")
    import pkg.sub  # noqa: F401

    assert sys.modules["then_mod"].SAW[0] == 1 and _watches() == []


def test_a_follower_that_fails_leaves_the_watched_module_loaded_and_is_caught_up_later(package, monkeypatch):
    """(ours failing, a ``MemoryError`` under an isolated agent's memory limit, must not fail the watched module's
    import, which numpy could not repeat with its submodules loaded: it stays loaded, and ``catch_up`` brings
    ours and says it had to)"""
    after_import("pkg.sub", "then_mod")
    monkeypatch.setenv("THEN_FAILS", "1")
    import pkg.sub  # noqa: F401

    assert "pkg.sub" in sys.modules and "then_mod" not in sys.modules and _watches() == []
    monkeypatch.setenv("THEN_FAILS", "0")
    assert catch_up("pkg.sub", "then_mod") is True
    assert sys.modules["then_mod"].SAW[0] == 1
    assert catch_up("pkg.sub", "then_mod") is False  # (nothing to catch up on)


def test_catch_up_brings_ours_after_an_import_past_the_watch(package):
    """An import hook ahead of the watch that finds modules itself (as instrumentation hooks do) loads the module
    without ours; ``catch_up`` finds that out."""
    import importlib.abc
    import importlib.machinery

    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            return importlib.machinery.PathFinder.find_spec(name, path, target) if name.startswith("pkg") else None

    after_import("pkg.sub", "then_mod")
    sys.meta_path.insert(0, Hook())
    import pkg.sub  # noqa: F401

    assert "then_mod" not in sys.modules
    assert catch_up("pkg.sub", "then_mod") is True and sys.modules["then_mod"].SAW[0] == 1
