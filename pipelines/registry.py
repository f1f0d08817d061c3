"""The registry of pipeline classes, filled as their modules are imported.

Each installed app's ``pipelines`` module is imported in ``AppConfig.ready`` so that web
and worker processes know the same definitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.exceptions import DefinitionError, UnknownPipelineError

if TYPE_CHECKING:
    from pipelines.dsl import Graph
    from pipelines.pipeline import Pipeline

_pipelines: dict[str, type[Pipeline]] = {}


def register(cls: type[Pipeline]) -> None:
    existing = _pipelines.get(cls.name)
    same_class = existing is not None and (
        (existing.__module__, existing.__qualname__) == (cls.__module__, cls.__qualname__)
    )
    if existing is not None and not same_class:
        raise DefinitionError(
            f"duplicate pipeline name {cls.name!r}: {cls.__module__}.{cls.__qualname__} and "
            f"{existing.__module__}.{existing.__qualname__}; set name = '...' on one of them"
        )
    _pipelines[cls.name] = cls


def unregister(name: str) -> None:
    _pipelines.pop(name, None)


def get(name: str) -> type[Pipeline]:
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


def all_pipelines() -> list[type[Pipeline]]:
    return [_pipelines[name] for name in sorted(_pipelines)]


def autodiscover() -> None:
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("pipelines")
