"""Durable background pipelines for Django.

from pipelines import Pipeline, Step, start
"""

from pipelines.dsl import Route, WaitForEvent, start
from pipelines.exceptions import (
    ContextValueError,
    DefinitionError,
    IdempotencyKeyReusedError,
    InputValueError,
    InvalidValueError,
    OutputValueError,
    OverwriteError,
    PipelineError,
    ReadOnlyError,
    UnknownPipelineError,
)
from pipelines.pipeline import Pipeline
from pipelines.step import Step

__all__ = [
    "ContextValueError",
    "DefinitionError",
    "IdempotencyKeyReusedError",
    "InputValueError",
    "InvalidValueError",
    "OutputValueError",
    "OverwriteError",
    "Pipeline",
    "PipelineError",
    "ReadOnlyError",
    "Route",
    "Step",
    "UnknownPipelineError",
    "WaitForEvent",
    "start",
]
