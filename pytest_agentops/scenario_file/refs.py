"""References to Python objects in scenario files: ``package.module:attr`` (attr may be dotted)."""

from __future__ import annotations

import importlib
import re
from typing import Any

from .._validation import did_you_mean
from ..errors import AgentExited, ConfigError, hide_own_frames
from ..process.exit_guard import refuse_exit

__tracebackhide__ = hide_own_frames

END = r"(?![\s\S])"  # end of string in both Python and ECMA regexes (``$`` also matches before a final newline)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
#: A reference: the module's import path, a colon, then the (dotted) attribute.
REFERENCE_PATTERN = rf"^{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*{END}"


def resolve_reference(ref: str, key: str = "reference") -> Any:
    """The object named by ``ref`` (``package.module:attr``, attr may be dotted), with a clear ConfigError
    for a malformed reference, a module that cannot be imported, and a missing attribute."""
    if not isinstance(ref, str) or not re.search(REFERENCE_PATTERN, ref):
        hint = ""
        if isinstance(ref, str) and ":" not in ref and re.fullmatch(rf"{_IDENT}(?:\.{_IDENT})+", ref):
            module, _, attr = ref.rpartition(".")
            hint = f" (did you mean '{module}:{attr}'?)"
        raise ConfigError(f"{key}={ref!r} must be a reference 'package.module:attr' (the module's import path, "
                          f"a colon, then the attribute){hint}")
    module_name, _, attr_path = ref.partition(":")
    try:
        with refuse_exit(f"importing {module_name!r}"):
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}={ref!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
                          "is the package installed or on sys.path?") from None
    except (Exception, SystemExit, AgentExited) as exc:
        raise ConfigError(f"{key}={ref!r}: importing module {module_name!r} raised {type(exc).__name__}: "
                          f"{exc}") from None
    obj: Any = module
    where = module_name
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(obj) if not n.startswith("__")]
            raise ConfigError(f"{key}={ref!r}: {where!r} has no attribute {part!r}{did_you_mean(part, names)}"
                              ) from None
        except Exception as exc:
            raise ConfigError(f"{key}={ref!r}: reading {part!r} of {where!r} raised {type(exc).__name__}: "
                              f"{exc}") from None
        where = f"{where}:{part}" if where == module_name else f"{where}.{part}"
    return obj
