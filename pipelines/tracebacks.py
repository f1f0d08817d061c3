"""Tracebacks for people: the frames of the user's own code first, the engine's collapsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The library's own files, wherever it is installed (a user's ``shop/pipelines.py`` is
# not one of them).
LIBRARY_DIR = str(Path(__file__).resolve().parent) + "/"
_FRAME = re.compile(r'^  File "(?P<path>[^"]+)", line \d+, in .*$')


@dataclass(frozen=True)
class Traceback:
    user_frames: str  # the frames outside the library, with their source lines
    error: str  # the last line: the exception and its message
    full: str


def split(text: str) -> Traceback:
    """The user's frames and the error line of a formatted Python traceback."""
    lines = text.rstrip("\n").splitlines()
    kept: list[str] = []
    keeping = False
    for line in lines[1:-1]:
        match = _FRAME.match(line)
        if match:
            keeping = not Path(match["path"]).resolve().as_posix().startswith(LIBRARY_DIR)
        if keeping:
            kept.append(line)
    return Traceback("\n".join(kept), lines[-1] if lines else "", text)
