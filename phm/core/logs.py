"""Logging to `$PHM_HOME/logs/phm.log`. Messages carry counts and pseudonyms, never NHS numbers."""

from __future__ import annotations

import logging
import re

from phm.core.settings import Settings

_NHS_LIKE = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")


def redact(text: str) -> str:
    """`text` with anything shaped like an NHS number (ten digits, optionally spaced 3-3-4) masked."""
    return _NHS_LIKE.sub("[redacted]", text)


class RedactNhsNumbers(logging.Filter):
    """Last line of defence: masks anything shaped like an NHS number in a log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _NHS_LIKE.search(message):
            record.msg, record.args = _NHS_LIKE.sub("[redacted]", message), None
        return True


def configure(settings: Settings) -> None:
    logger = logging.getLogger("phm")
    if any(getattr(h, "_phm", False) for h in logger.handlers):
        return
    handler = logging.FileHandler(settings.logs_dir / "phm.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactNhsNumbers())
    handler._phm = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(settings.log_level.upper())
