"""The registry of pipeline classes, filled as their modules are imported.

Each installed app's ``pipelines`` module is imported in ``AppConfig.ready`` so that web
and worker processes know the same definitions.
"""

from __future__ import annotations

from typing import Any, Protocol

from pipelines.dsl import Graph
from pipelines.exceptions import DefinitionError, UnknownPipelineError


class Registered(Protocol):
    """A pipeline class, as the registry sees it (pipeline.Pipeline subclasses)."""

    name: str
    graph: Graph
    __module__: str

    def trigger(self, input: Any = None, *, idempotency_key: str | None = None) -> Any: ...


_pipelines: dict[str, Registered] = {}


def _qualname(cls: Registered) -> str:
    return str(getattr(cls, "__qualname__", cls.name))


def register(cls: Registered) -> None:
    existing = _pipelines.get(cls.name)
    same_class = existing is not None and (
        (existing.__module__, _qualname(existing)) == (cls.__module__, _qualname(cls))
    )
    if existing is not None and not same_class:
        raise DefinitionError(
            f"duplicate pipeline name {cls.name!r}: {cls.__module__}.{_qualname(cls)} and "
            f"{existing.__module__}.{_qualname(existing)}; set name = '...' on one of them"
        )
    _pipelines[cls.name] = cls


def unregister(name: str) -> None:
    _pipelines.pop(name, None)


def get(name: str) -> Registered:
    try:
        return _pipelines[name]
    except KeyError:
        known = ", ".join(sorted(_pipelines)) or "none registered"
        raise UnknownPipelineError(
            f"unknown pipeline {name!r} (known: {known}); define it in an installed app's "
            f"pipelines.py module"
        ) from None


def graph_or_none(name: str) -> Graph | None:
    """The pipeline's compiled graph, or None when no pipeline has that name (any more)."""
    try:
        return get(name).graph
    except UnknownPipelineError:
        return None


def all_pipelines() -> list[Registered]:
    return [_pipelines[name] for name in sorted(_pipelines)]


def autodiscover() -> None:
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("pipelines")
