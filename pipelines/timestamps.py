"""The one way a moment is shown to people (admin, commands; the dashboard's templates
use the same format): ISO-like, to the second, in the project's time zone."""

from __future__ import annotations

from datetime import datetime

from django.utils import dateformat, timezone

# Django's date-format syntax (the templates' ``|date:"Y-m-d H:i:s"``): 2026-12-02 03:39:06
TIMESTAMP_FORMAT = "Y-m-d H:i:s"
NOTHING = "-"


def timestamp(moment: datetime | None) -> str:
    if moment is None:
        return NOTHING
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return dateformat.format(moment, TIMESTAMP_FORMAT)
