"""Reading what people type into the dashboard and the command line: run ids, dates, JSON
and free text. Each bad input raises :class:`InputValueError` with a message naming the
input and what was wrong; the views answer it with 400, the command with exit status 1."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from pipelines.exceptions import InputValueError
from pipelines.values import check_text

# Python's int() also reads Arabic-Indic and full-width digits and "8_0"; ids are ASCII.
_ASCII_DIGITS = re.compile(r"[0-9]+")
MAX_ID = 2**63 - 1  # ids are 64-bit on every database
MAX_TEXT = 500


def shown(text: str, limit: int = 40) -> str:
    """The input as a message quotes it: repr (control characters escaped), shortened."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def is_id(text: str) -> bool:
    return bool(_ASCII_DIGITS.fullmatch(text)) and 0 < int(text) <= MAX_ID


def parse_id(text: str, *, what: str) -> int:
    """An id typed by a person: ASCII digits, 1 to 2**63-1."""
    if not is_id(text):
        raise InputValueError(f"{what} must be an id made of the digits 0-9, got {shown(text)}")
    return int(text)


def parse_count(text: str, *, what: str, maximum: int) -> int:
    """A count such as ``--limit``: ASCII digits, 1 to ``maximum``."""
    if not _ASCII_DIGITS.fullmatch(text) or not 0 < int(text) <= maximum:
        raise InputValueError(
            f"{what} must be a whole number from 1 to {maximum}, got {shown(text)}"
        )
    return int(text)


def parse_text(text: str, *, what: str, max_length: int = MAX_TEXT, blank: bool = True) -> str:
    """Free text (a search, a filter, a name, a reason), stripped, checked like every
    stored string. Empty is allowed when ``blank``."""
    text = text.strip()
    if not text and blank:
        return text
    return check_text(text, what=what, max_length=max_length, error=InputValueError)


def parse_moment(text: str, *, what: str) -> datetime:
    """An ISO 8601 date-time; without an offset it is in the current time zone."""
    message = f"{what} must be an ISO date-time such as 2024-02-29T13:00:00, got {shown(text)}"
    try:
        moment = parse_datetime(text)
    except ValueError:  # well-formed but impossible: February 30th, offset +99:00
        raise InputValueError(message) from None
    if moment is None:
        raise InputValueError(message)
    try:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        moment.astimezone(UTC)  # the database compares in UTC; year 1 at +01:00 is year 0
    except (OverflowError, ValueError):
        raise InputValueError(f"{what} is out of range, got {shown(text)}") from None
    return moment


def parse_json_text(text: str, *, what: str) -> Any:
    """JSON typed by a person (``--input``, the event form's payload). The value itself is
    checked later, by the service that stores it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputValueError(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputValueError(f"{what}: nested too deeply") from None
