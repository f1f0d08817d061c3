"""Hiding values of secret-looking keys wherever the library shows data to people:
the dashboard, the admin and command output. The stored data is never changed."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from django.conf import settings

MASK = "••••••"
DEFAULT_PATTERN = (
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|apikey|authorization|auth[_-]?header|"
    r"credential|private[_-]?key|access[_-]?key|session[_-]?id|cookie|signature|otp|pin$"
)


@lru_cache(maxsize=8)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def is_secret(key: object) -> bool:
    pattern = getattr(settings, "PIPELINES_MASKED_KEYS", DEFAULT_PATTERN)
    return bool(pattern) and isinstance(key, str) and bool(_compiled(pattern).search(key))


def mask(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking object keys replaced, at any
    depth."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret(k) else mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def mask_entry(key: str, value: Any) -> Any:
    """The value to show for context key ``key``."""
    return MASK if is_secret(key) else mask(value)
