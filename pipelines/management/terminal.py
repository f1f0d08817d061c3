"""What the command line prints: text that cannot drive the operator's terminal."""

from __future__ import annotations

import re
from typing import Any, NoReturn

from django.core.management.base import CommandParser

# C0 and C1 controls (ESC starts terminal sequences; CSI is 0x9b on its own), DEL, lone
# surrogates (undecodable bytes from argv), and the invisible and bidirectional controls
# that make text read differently from what it is.
_CONTROLS = "\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_OR_NEWLINE = re.compile(f"[{_CONTROLS}\n]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters written as ``\\uXXXX`` (also valid inside JSON
    strings); newlines too unless ``newlines``."""
    return (_UNSAFE if newlines else _UNSAFE_OR_NEWLINE).sub(_escape, text)


def one_line(value: object) -> str:
    """A value for a table cell or a single output line."""
    return printable(str(value), newlines=False)


class SafeParser(CommandParser):
    """Usage errors quote arguments as typed (``unrecognized arguments: ...``)."""

    def error(self, message: str) -> NoReturn:
        super().error(printable(message))
        raise AssertionError("unreachable: argparse's error() exits")


def make_safe(parser: Any) -> CommandParser:
    """The top-level parser of a command, with :class:`SafeParser`'s errors."""
    parser.__class__ = SafeParser
    return parser
