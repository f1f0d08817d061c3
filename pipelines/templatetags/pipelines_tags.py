from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from pipelines.masking import mask_text
from pipelines.timestamps import timestamp

register = template.Library()
NOTHING = "\u2013"  # an en dash


@register.filter
def seconds(value: float | None) -> str:
    """1.234 -> '1.23 s', 125 -> '2 min 05 s', 7300 -> '2 h 01 min'."""
    if value is None:
        return NOTHING
    if value < 60:
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def elapsed(start: datetime | None, end: datetime | None = None) -> str:
    if start is None:
        return NOTHING
    return seconds(((end or timezone.now()) - start).total_seconds())


@register.filter
def masked(text: str | None) -> str | None:
    """Text (an error, a traceback, a key) with credential shapes masked."""
    return mask_text(str(text)) if text else text


def compact_json(value: Any, limit: int = 120) -> str:
    """One line of JSON, cut at ``limit`` characters (for the per-step diff)."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def pretty_json(value: Any) -> str:
    """Indented, key-sorted JSON for people to read (escaped by whoever shows it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.filter
def moment(value: datetime | None) -> str:
    """The one timestamp format (pipelines.timestamps), as the admin and commands show it."""
    if value is None:
        return NOTHING
    return timestamp(value)


@register.filter
def ago(value: datetime | None) -> str:
    """'just now', '3 minutes ago': never '0 minutes ago'."""
    if value is None:
        return NOTHING
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value)} ago"
