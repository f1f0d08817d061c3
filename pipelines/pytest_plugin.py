"""pytest plugin (registered through the ``pytest11`` entry point): the
``pipelines_inline`` fixture. Your test still needs database access (``db`` or the
``django_db`` mark of pytest-django)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipelines.testing import InlinePipelines


@pytest.fixture
def pipelines_inline() -> Iterator[InlinePipelines]:
    """Triggered runs stay out of Redis; ``pipelines_inline.run(P, input)`` runs one to
    completion in the test process, and its ``assert_*`` helpers check the outcome."""
    # Imported here, not at the top: pytest loads plugins before Django is set up.
    from pipelines.testing import inline_pipelines

    with inline_pipelines() as inline:
        yield inline
