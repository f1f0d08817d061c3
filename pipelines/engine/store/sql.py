"""The PostgreSQL store's statements, loaded by name from ``queries.sql``.

A statement starts at a ``-- name: <name>`` line and ends at the next one. ``{{name}}``
includes another one's text (a fragment that two statements share). Status literals
(``{run.pending}``, ``{step.running}``, ``{attempt.succeeded}``, ``{kind.step}``) are filled
in from :mod:`pipelines.lifecycle`; a name that is not a status there is an error at load.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pipelines.lifecycle import AttemptStatus, RunStatus, StepKind, StepStatus

_FILE = Path(__file__).with_name("queries.sql")
_STATUSES: dict[str, type] = {
    "run": RunStatus,
    "step": StepStatus,
    "attempt": AttemptStatus,
    "kind": StepKind,
}
_TOKEN = re.compile(r"\{(run|step|attempt|kind)\.(\w+)\}")
_INCLUDE = re.compile(r"\{\{(\w+)\}\}")


def _literal(match: re.Match[str]) -> str:
    group, name = match.group(1), match.group(2)
    values = {member.value for member in _STATUSES[group]}  # type: ignore[attr-defined]
    if name not in values:
        raise ValueError(f"queries.sql: {group}.{name} is not a {group} status ({sorted(values)})")
    return f"'{name}'"


@cache
def raw_statements() -> dict[str, str]:
    """Every statement by name, with its status tokens still in place (for the tests)."""
    statements: dict[str, str] = {}
    name = None
    for line in _FILE.read_text().splitlines():
        found = re.match(r"--\s*name:\s*(\w+)", line)
        if found:
            name = found.group(1)
            statements[name] = ""
        elif name is not None and not line.lstrip().startswith("--"):
            statements[name] += line + "\n"
    texts = {key: text.strip().rstrip(";") for key, text in statements.items()}
    return {key: _INCLUDE.sub(lambda m: texts[m.group(1)], text) for key, text in texts.items()}


@cache
def statement(name: str) -> str:
    """The statement called ``name``, ready to execute."""
    return _TOKEN.sub(_literal, raw_statements()[name])
