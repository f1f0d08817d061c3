"""Deeply read-only views of JSON values, used for ``context.input``.

They subclass ``dict`` and ``list`` so they serialise, compare and can be stored exactly
like the values they wrap (a step may return or store part of its input); only mutation
is refused. ``dict(x)``, ``list(x)``, slices and ``thaw(x)`` give mutable copies.
"""

from __future__ import annotations

from typing import Any, NoReturn

from pipelines.exceptions import ReadOnlyError

_MESSAGE = "context.input is read-only (it is the run's trigger input); copy it to change it"


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise ReadOnlyError(_MESSAGE)


def freeze(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, FrozenDict):
        return FrozenDict(value)
    if isinstance(value, list) and not isinstance(value, FrozenList):
        return FrozenList(value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


class FrozenDict(dict[str, Any]):
    __slots__ = ()

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__((k, freeze(v)) for k, v in data.items())

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    __setitem__ = __delitem__ = __ior__ = _refuse
    setdefault = pop = popitem = clear = update = _refuse


class FrozenList(list[Any]):
    __slots__ = ()

    def __init__(self, data: list[Any]) -> None:
        super().__init__(freeze(v) for v in data)

    def __repr__(self) -> str:
        return f"FrozenList({list.__repr__(self)})"

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
