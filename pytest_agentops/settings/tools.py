"""Tool declaration: ``@tool`` attaches a ``ToolSpec`` (the function and its harness metadata).

A declared tool stays an ordinary function (calling it directly needs a world). What a trial binds it to
is ``pytest_agentops.harness.tools``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from ..errors import ConfigError

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

    def declare(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise ConfigError(f"@tool must decorate a function, got {f!r}")
        sig = inspect.signature(f)
        params = list(sig.parameters.values())
        takes_world = bool(params) and params[0].name == "world"
        if takes_world:
            sig = sig.replace(parameters=params[1:])
        f.__agentops_tool__ = ToolSpec(  # type: ignore[attr-defined]
            fn=f, name=name or f.__name__, destructive=bool(destructive), scope=scope,
            side_effect=bool(destructive if side_effect is None else side_effect),
            takes_world=takes_world, signature=sig, is_async=inspect.iscoroutinefunction(f),
            idempotent=bool(idempotent),
        )
        return f

    return declare(fn) if fn is not None else declare


def tool_spec(obj: Any) -> ToolSpec:
    """The ToolSpec of a declared tool; a plain function is taken as a harmless, undeclared tool."""
    spec = getattr(obj, "__agentops_tool__", None)
    if isinstance(spec, ToolSpec):
        return spec
    if callable(obj):
        return tool(obj).__agentops_tool__  # type: ignore[no-any-return]
    raise ConfigError(f"tools must be functions (decorate them with @tool), got {obj!r}")
