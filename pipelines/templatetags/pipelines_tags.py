from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone

from pipelines.masking import mask_text

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


def pretty_json(value: Any) -> str:
    """Indented, key-sorted JSON for people to read (escaped by whoever shows it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
