"""The run's global context: write-once JSON keys shared by every step of a run.

Two faces share the read API:

* :class:`StepContext` (``self.context`` in a step) stages writes; they commit atomically
  with the step's success, so a failed or crashed attempt leaves nothing behind.
* :class:`pipelines.controls.RunContextHandle` (``run.context``) writes at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from asgiref.sync import sync_to_async

from pipelines.exceptions import ContextKeyError, ContextValueError, OverwriteError
from pipelines.frozen import freeze
from pipelines.models import ContextWrite, RunContext
from pipelines.values import canonical, check_json, checked_canonical, context_where

MAX_KEY_LENGTH = 255


def check_key(key: object) -> str:
    if not isinstance(key, str):
        raise ContextValueError(
            f"context key must be a str, got {type(key).__name__} {key!r}", path="context"
        )
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ContextValueError(
            f"context key must be 1 to {MAX_KEY_LENGTH} characters, got {len(key)}",
            path="context",
        )
    check_json(key, where=f"context key {json.dumps(key)}", error=ContextValueError)
    return key


def checked_copy(key: object, value: Any) -> tuple[str, Any]:
    """Validate a write and return a private copy of the value (later mutation of the
    caller's object must not change what was staged)."""
    key = check_key(key)
    return key, checked_canonical(value, where=context_where(key), error=ContextValueError)


def load_data(run_id: int) -> dict[str, Any]:
    return RunContext.objects.filter(pk=run_id).values_list("data", flat=True).get() or {}


def describe_writer(run_id: int, key: str) -> str:
    write = ContextWrite.objects.filter(run_id=run_id, key=key).order_by("-id").first()
    return write.writer() if write else "an unknown writer"


class ContextReader:
    """Reads: the latest committed values (plus, in a step, the step's own staged writes)."""

    def __init__(self, run_id: int, run_input: Any) -> None:
        self.run_id = run_id
        self._input = run_input

    def _view(self) -> dict[str, Any]:
        return load_data(self.run_id)

    @property
    def input(self) -> Any:
        """The run's trigger input, read-only: mutating it raises ReadOnlyError."""
        return freeze(self._input)

    def get(self, key: str, default: Any = None) -> Any:
        return self._view().get(check_key(key), default)

    def has(self, key: str) -> bool:
        return check_key(key) in self._view()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._view()

    def __getitem__(self, key: str) -> Any:
        view = self._view()
        if check_key(key) not in view:
            raise ContextKeyError(key)
        return view[key]

    def keys(self) -> list[str]:
        return sorted(self._view())

    def items(self) -> list[tuple[str, Any]]:
        return sorted(self._view().items())

    def to_dict(self) -> dict[str, Any]:
        return dict(self._view())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    # Async twins for async views and consumers: the same reads, in Django's sync thread.

    async def aget(self, key: str, default: Any = None) -> Any:
        return await sync_to_async(self.get)(key, default)

    async def ahas(self, key: str) -> bool:
        return await sync_to_async(self.has)(key)

    async def akeys(self) -> list[str]:
        return await sync_to_async(self.keys)()

    async def aitems(self) -> list[tuple[str, Any]]:
        return await sync_to_async(self.items)()

    async def ato_dict(self) -> dict[str, Any]:
        return await sync_to_async(self.to_dict)()


class StepContext(ContextReader):
    """``self.context`` in a step: writes are staged and commit with the step's success."""

    def __init__(self, run_id: int, run_input: Any) -> None:
        super().__init__(run_id, run_input)
        self.staged: dict[str, tuple[Any, bool]] = {}

    def _view(self) -> dict[str, Any]:
        data = load_data(self.run_id)
        data.update({key: canonical(v) for key, (v, _) in self.staged.items()})
        return data

    def set(self, key: str, value: Any, *, overwrite: bool = False) -> None:
        key, value = checked_copy(key, value)
        if not overwrite:
            if key in self.staged:
                raise OverwriteError(key, "this step, earlier in this attempt")
            if key in load_data(self.run_id):
                raise OverwriteError(key, describe_writer(self.run_id, key))
        elif key in self.staged:
            # Replacing our own staged value of a key that was new to the run must not skip
            # the commit-time check that it is still new.
            overwrite = self.staged[key][1]
        self.staged[key] = (value, overwrite)
