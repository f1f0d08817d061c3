"""Masking the library's log records (engine and step loggers, ``pipelines.*``) before any
handler formats them.

A filter on the ``pipelines`` logger would not see its children's records, and the engine's
loggers are created as their modules are imported; so the first handler of the
``pipelines`` logger masks each record in place, and every handler after it (this logger's,
then its parents', such as pytest's or a host's root handler) sees the masked record.
Handlers of your own that bypass the ``pipelines`` logger can add :class:`MaskingFilter`.
"""

from __future__ import annotations

import logging

from pipelines.masking import mask_text

LOGGER = "pipelines"
_FORMATTER = logging.Formatter()


def mask_record(record: logging.LogRecord) -> None:
    """Replace the record's message, exception text and stack with masked text, once."""
    if getattr(record, "pipelines_masked", False):
        return
    try:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
    except Exception:
        return
    record.pipelines_masked = True


class MaskingFilter(logging.Filter):
    """Add to a handler to mask every record it emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


class MaskingHandler(logging.Handler):
    """Emits nothing: masks records for the handlers after it."""

    def handle(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        last = logging.lastResort
        # Python's behaviour for a project without logging configuration stays: warnings
        # still reach stderr through the last-resort handler.
        if last and record.levelno >= last.level and not _other_handlers(record.name):
            last.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        return None


def _other_handlers(name: str) -> bool:
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        if any(not isinstance(h, MaskingHandler) for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


def install() -> None:
    """Put the masking handler first on the ``pipelines`` logger (idempotent)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, MaskingHandler) for h in logger.handlers):
        logger.handlers.insert(0, MaskingHandler())
