"""The Pipeline base class: subclasses set ``definition`` and are registered on import."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from asgiref.sync import sync_to_async

from pipelines import registry
from pipelines.dsl import Flow, Graph, compile_flow
from pipelines.exceptions import DefinitionError
from pipelines.steering import steering

if TYPE_CHECKING:
    from pipelines.models import PipelineRun


class Pipeline:
    """Subclass with ``definition = start(FirstStep)...``; ``name`` defaults to the class name.

    Set ``abstract = True`` on a base class that only shares code.
    """

    definition: ClassVar[Flow]
    name: ClassVar[str]
    graph: ClassVar[Graph]
    abstract: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("abstract", False):
            return
        cls.abstract = False
        definition = cls.__dict__.get("definition")
        if definition is None:
            raise DefinitionError(
                f"pipeline {cls.__qualname__} has no definition; set "
                f"definition = start(FirstStep).chain(...), or abstract = True"
            )
        name = cls.__dict__.get("name", cls.__name__)
        if not isinstance(name, str) or not name or len(name) > 200:
            raise DefinitionError(f"pipeline {cls.__qualname__}: name must be a short string")
        cls.name = name
        cls.graph = compile_flow(definition, pipeline=name)
        registry.register(cls)

    @classmethod
    def trigger(cls, input: Any = None, *, idempotency_key: str | None = None) -> PipelineRun:
        """Create a run and enqueue its first step when the current transaction commits."""
        if cls.__dict__.get("abstract", True):  # a concrete class sets False on itself
            raise DefinitionError(
                f"pipeline {cls.__qualname__} is abstract (it has no definition of its own); "
                f"trigger one of its concrete subclasses"
            )
        return steering().trigger(cls.name, input, idempotency_key)

    @classmethod
    async def atrigger(
        cls, input: Any = None, *, idempotency_key: str | None = None
    ) -> PipelineRun:
        """``trigger`` for async code: the same transaction, run in Django's sync thread
        (the enqueue happens when it commits, or at once outside a transaction)."""
        return await sync_to_async(cls.trigger)(input, idempotency_key=idempotency_key)
