"""Tool declaration: ``@tool`` attaches a ``ToolSpec`` (the function and its harness metadata).

A declared tool stays an ordinary function (calling it directly needs a world). What a trial binds it to
is ``pytest_agentops.harness.tools``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from .._validation import check_bool
from ..errors import ConfigError, hide_own_frames

__tracebackhide__ = hide_own_frames

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A declared tool: the function and its harness metadata."""

    fn: Callable[..., Any]
    name: str
    destructive: bool
    scope: str | None
    side_effect: bool
    takes_world: bool
    signature: inspect.Signature = field(compare=False)  # without ``world``
    is_async: bool = False
    idempotent: bool = False  # running it again with the same arguments changes nothing more


@overload
def tool(fn: F) -> F: ...
@overload
def tool(*, destructive: bool = False, scope: str | None = None, name: str | None = None,
         side_effect: bool | None = None, idempotent: bool = False) -> Callable[[F], F]: ...


def tool(fn: Callable[..., Any] | None = None, *, destructive: bool = False, scope: str | None = None,
         name: str | None = None, side_effect: bool | None = None, idempotent: bool = False) -> Any:
    """Declare a tool. ``destructive=True`` puts it behind the confirmation gate; ``scope`` names the
    capability a scenario must grant to use it; a first parameter named ``world`` is bound per trial.

    ``side_effect`` (default: same as ``destructive``) marks tools whose effect must happen at most once in a
    trial: run again with the same arguments (a retry, or a restart after a crash) it is a duplicate side
    effect. ``idempotent=True`` says a second run with the same arguments changes nothing more (setting a
    status, an upsert), so its repeats are not duplicates.
    """

    destructive = check_bool("destructive", destructive)  # type: ignore[assignment]  (``"false"`` was True)
    side_effect = check_bool("side_effect", side_effect, optional=True)
    idempotent = check_bool("idempotent", idempotent)  # type: ignore[assignment]
    if name is not None and (not isinstance(name, str) or not TOOL_NAME.fullmatch(name)):
        raise ConfigError(f"@tool(name={name!r}): a tool's name is 1 to 128 characters, none of them a space or "
                          "a control character (what a model's tool call names it by)")

    def declare(f: Callable[..., Any]) -> Callable[..., Any]:
        spec = _spec(f, name, destructive, scope, side_effect, idempotent)
        try:
            f.__agentops_tool__ = spec  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            raise ConfigError(f"@tool cannot mark {f!r} (a built-in, or an object that takes no attributes): "
                              "wrap it in a function of your own") from None
        return f

    return declare(fn) if fn is not None else declare


#: What a tool's name may be: no space or control character, 1 to 128 of them (the model APIs are stricter:
#: OpenAI's and Anthropic's take ``[A-Za-z0-9_-]{1,64}``; other frameworks allow dots, say).
TOOL_NAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")


def _spec(f: Any, name: str | None, destructive: bool, scope: str | None, side_effect: bool | None,
          idempotent: bool) -> ToolSpec:
    if not callable(f):
        raise ConfigError(f"@tool must decorate a function, got {f!r}")
    if name is None:
        name = getattr(f, "__name__", None)
        if not isinstance(name, str) or name.startswith("<"):  # (a lambda's is '<lambda>')
            raise ConfigError(f"tool {f!r} has no name of its own to be called by (a callable object, a "
                              "functools.partial, a lambda): declare it with @tool(name=...)")
        if not TOOL_NAME.fullmatch(name):
            raise ConfigError(f"tool {f!r}: its name {name!r} is not a tool's name (1 to 128 characters, none of "
                              "them a space or a control character): declare it with @tool(name=...)")
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        raise ConfigError(f"tool {name!r}: its signature cannot be read ({f!r}): wrap it in a function of your "
                          "own") from None
    params = list(sig.parameters.values())
    takes_world = bool(params) and params[0].name == "world"
    if takes_world:
        sig = sig.replace(parameters=params[1:])
    call = getattr(f, "__call__", None)  # noqa: B004 (a callable object's own method tells whether it is async)
    is_async = inspect.iscoroutinefunction(f) or (not inspect.isfunction(f) and inspect.iscoroutinefunction(call))
    return ToolSpec(fn=f, name=name, destructive=destructive, scope=scope,
                    side_effect=destructive if side_effect is None else side_effect, takes_world=takes_world,
                    signature=sig, is_async=is_async, idempotent=idempotent)


def tool_spec(obj: Any) -> ToolSpec:
    """The ToolSpec of a declared tool; a plain function is taken as a harmless, undeclared tool."""
    spec = getattr(obj, "__agentops_tool__", None)
    if isinstance(spec, ToolSpec):
        return spec
    if callable(obj):  # (nothing set on it: a built-in or a partial may take no attribute)
        return _spec(obj, None, False, None, None, False)
    raise ConfigError(f"tools must be functions (decorate them with @tool), got {obj!r}")
