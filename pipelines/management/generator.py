"""``manage.py pipelines new NAME --app APP``: a pipeline skeleton and its test.

The code it writes passes ruff and strict mypy, and its test (a ``TestCase`` using
``pipelines.testing``) runs under both ``manage.py test`` and pytest-django. The test goes
where the app keeps its tests: its ``tests/`` package, or its ``tests.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.apps import apps
from django.core.management.base import CommandError

MODULE_HEADER = '''"""Pipelines of this app, found at startup."""

from typing import Any

from pipelines import Pipeline, Step, start
'''

PIPELINE_TEMPLATE = """

class {name}Fetch(Step):
    def execute(self, payload: Any) -> Any:
        # The trigger input arrives here; write what later steps need to the context.
        self.context.set("started_with", payload)
        return payload


class {name}Finish(Step):
    retries = 3

    def execute(self, payload: Any) -> Any:
        return {{"done": True, "input": self.context.get("started_with")}}


class {name}(Pipeline):
    definition = start({name}Fetch).chain({name}Finish)
"""

TEST_IMPORTS = """from django.test import TestCase
from pipelines.testing import PipelinesTestMixin

from {module} import {name}, {name}Finish
"""

TEST_CLASS = '''

class {name}PipelineTests(PipelinesTestMixin, TestCase):
    """Runs {name} to completion in the test process: no Redis, no workers."""

    def test_runs_to_completion(self) -> None:
        run = self.run_pipeline({name}, {{"example": 1}})

        self.assertRunSucceeded(run)
        self.assertTriggered({name}, times=1, input={{"example": 1}})
        self.assertContextHas(run, "started_with", {{"example": 1}})
        self.assertStepOutput(run, {name}Finish, {{"done": True, "input": {{"example": 1}}}})
'''

# What `manage.py startapp` writes into tests.py: replaced, since it holds nothing.
STARTAPP_TESTS = "from django.test import TestCase\n\n# Create your tests here.\n"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _add_pipeline(module_path: Path, name: str) -> None:
    if not module_path.exists():
        module_path.write_text(MODULE_HEADER)
    else:
        text = module_path.read_text()
        missing = [
            line
            for line in ("from typing import Any", "from pipelines import Pipeline, Step, start")
            if line not in text
        ]
        if missing:
            module_path.write_text("\n".join(missing) + "\n" + text)
    with module_path.open("a") as module:
        module.write(PIPELINE_TEMPLATE.format(name=name))


def _add_test(app_dir: Path, module: str, name: str) -> Path:
    imports = TEST_IMPORTS.format(module=module, name=name)
    body = TEST_CLASS.format(name=name)
    if (app_dir / "tests").is_dir():
        path = app_dir / "tests" / f"test_{_snake(name)}_pipeline.py"
        if path.exists():
            raise CommandError(f"{path} already exists; pick another name or remove it")
        (app_dir / "tests" / "__init__.py").touch()
        path.write_text(f'"""Tests for the {name} pipeline."""\n\n' + imports + body)
        return path
    path = app_dir / "tests.py"
    text = path.read_text() if path.exists() else ""
    if text.strip() in ("", STARTAPP_TESTS.strip()):
        path.write_text(imports + body)
        return path
    if re.search(rf"^class {name}PipelineTests\b", text, re.M):
        raise CommandError(f"{path} already has {name}PipelineTests; pick another name")
    return _append_test(path, text, module, name, body)


def _append_test(path: Path, text: str, module: str, name: str, body: str) -> Path:
    lines = text.splitlines(keepends=True)
    app_import = re.compile(rf"^from {re.escape(module)} import (.+)$")
    needed = []
    for line in TEST_IMPORTS.format(module=module, name=name).splitlines():
        if not line or f"{line}\n" in lines:
            continue
        match = app_import.match(line)
        existing = next((i for i, old in enumerate(lines) if app_import.match(old)), None)
        if match and existing is not None:
            # One import line per module, names sorted, as isort wants it.
            found = app_import.match(lines[existing])
            assert found is not None
            names = {n.strip() for n in f"{found[1]}, {match[1]}".split(",")}
            lines[existing] = f"from {module} import {', '.join(sorted(names))}\n"
            continue
        needed.append(f"{line}\n")
    # New imports go after the file's last top-level import, the class at the end.
    last = max(
        (i for i, line in enumerate(lines) if re.match(r"(from|import) \S", line)), default=-1
    )
    lines[last + 1 : last + 1] = needed
    path.write_text("".join(lines).rstrip("\n") + "\n" + body)
    return path


def generate_pipeline(*, name: str, app_label: str) -> list[Path]:
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        raise CommandError(
            f"NAME must be a CamelCase class name such as ImportInvoices, got {name!r}"
        )
    try:
        app = apps.get_app_config(app_label)
    except LookupError:
        labels = ", ".join(sorted(a.label for a in apps.get_app_configs()))
        raise CommandError(f"no installed app {app_label!r}; installed: {labels}") from None
    app_dir = Path(app.path)
    module_path = app_dir / "pipelines.py"
    if module_path.exists() and re.search(rf"^class {name}\b", module_path.read_text(), re.M):
        raise CommandError(f"{module_path} already defines class {name}; pick another name")
    test_path = _add_test(app_dir, f"{app.name}.pipelines", name)
    _add_pipeline(module_path, name)
    return [module_path, test_path]
