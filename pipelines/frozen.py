"""Deeply read-only views of JSON values, used for ``context.input``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

from pipelines.exceptions import ReadOnlyError

_MESSAGE = "context.input is read-only (it is the run's trigger input); copy it to change it"


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise ReadOnlyError(_MESSAGE)


def freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenDict(value)
    if isinstance(value, list):
        return FrozenList(value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy."""
    if isinstance(value, FrozenDict | dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, FrozenList | list):
        return [thaw(v) for v in value]
    return value


class FrozenDict(Mapping[str, Any]):
    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = {k: freeze(v) for k, v in data.items()}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenDict({thaw(self)!r})"

    def __eq__(self, other: object) -> bool:
        return thaw(self) == thaw(other)

    __hash__ = None  # type: ignore[assignment]
    __setitem__ = __delitem__ = _refuse
    setdefault = pop = popitem = clear = update = _refuse


class FrozenList(Sequence[Any]):
    __slots__ = ("_data",)

    def __init__(self, data: list[Any]) -> None:
        self._data = tuple(freeze(v) for v in data)

    def __getitem__(self, index: Any) -> Any:
        return self._data[index]

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenList({thaw(self)!r})"

    def __eq__(self, other: object) -> bool:
        return thaw(self) == thaw(other)

    __hash__ = None  # type: ignore[assignment]
    __setitem__ = __delitem__ = __iadd__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
