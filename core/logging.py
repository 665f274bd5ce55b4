"""Logging that keeps PHI out of log lines: the filters, the JSON formatter and the LOGGING configuration."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

# A query string starts at a "?" followed by a character and runs, whole, to the request line's
# " HTTP/x.y" (the last one on the line: the query itself may hold spaces, quotes or that text) or,
# with none after it, to the end of the line. Nothing inside it ends it early: an apostrophe
# (O'Brien), a quote, a space or an ampersand are all part of what a person typed.
_QUERY = re.compile(r"\?(?=\S)(?:[^\r\n]*(?= HTTP/\d)|[^\r\n]*)")
STRIPPED = "?…"

# A link token: the path segment after /pay/ (payment links) or /p/ (the patient's pages). Whoever
# holds one can open the link, so it never reaches a log whole.
_LINK_TOKEN = re.compile(r"(?P<prefix>/(?:pay|p|messages/unsubscribe)/)(?P<token>[^\s/?#]+)")
# How many of a token's last characters stay readable (enough to tell two links apart).
TOKEN_VISIBLE_CHARACTERS = 4


def link_tokens_masked(text: str) -> str:
    """``text`` with every link token cut to its last characters: ``/pay/<token>`` becomes ``/pay/****abcd``."""

    def mask(match: re.Match[str]) -> str:
        return f"{match['prefix']}****{match['token'][-TOKEN_VISIBLE_CHARACTERS:]}"

    return _LINK_TOKEN.sub(mask, text)


def strip_query_strings(text: str) -> str:
    """``text`` with every query string replaced by ``?…`` (idempotent)."""
    return _QUERY.sub(STRIPPED, text)


class StripQueryStringFilter(logging.Filter):
    """Removes query strings from log lines (a search term may be a patient's name) and masks link
    tokens (``link_tokens_masked``: Django's "Not Found" and "Forbidden" lines name the path).

    Works on the formatted message, so it covers every way a request line reaches a log:
    runserver's ``django.server`` lines (tuple arguments, and the "Bad request syntax" line that
    repeats a raw request line), ``django.request``, and gunicorn's access log (a mapping of
    atoms, request line and referer among them), and the formatted traceback of a record that
    carries one. The record keeps the cleaned message with no arguments; attributes other handlers
    read (``status_code``, ``request``) stay.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: clean each part
            message = f"{record.msg} {record.args!r}"
        record.msg = link_tokens_masked(strip_query_strings(message))
        if record.exc_info and not record.exc_text:
            # A traceback may show the request (its path, a template context): format it once here,
            # cleaned; formatters print exc_text when it is set.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = link_tokens_masked(strip_query_strings(record.exc_text))
        record.args = ()
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: ``timestamp``, ``level``, ``logger``, ``message``, ``request_id`` and,
    when the record has one, ``exception`` (the formatted traceback).

    Only these fields: a record's extra attributes are left out, because some carry objects whose
    text holds what the log must not (Django's ``request`` names the full path and query string).
    The message and traceback are cleaned as ``StripQueryStringFilter`` cleans them (again, so the
    output is clean even on a handler without that filter; cleaning is idempotent).
    """

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["timestamp"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = _cleaned(record.getMessage())
        log_data["request_id"] = getattr(record, "request_id", None) or "-"
        # The filter leaves its cleaned traceback in exc_text; format the exception only without it.
        traceback_text = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if traceback_text:
            log_data["exception"] = _cleaned(str(traceback_text))


def _cleaned(text: str) -> str:
    return link_tokens_masked(strip_query_strings(text))


# --- Configuration ---------------------------------------------------------------------------
LOG_FORMATS = ("plain", "json")


def build_logging(log_format: str, level: str) -> dict[str, Any]:
    """The ``LOGGING`` dictionary for ``log_format`` ("plain" or "json") at root ``level``.

    Request logs drop query strings whole (a search such as ``?search=O'Brien`` must never reach a
    log) and mask link tokens. The filter sits on the console handler (every record written) and on
    the request loggers themselves (so any handler added to them, gunicorn's included, sees cleaned
    records). Raises ValueError for another format. Imports nothing from Django: gunicorn's master
    process (config/gunicorn.py) uses it before any settings are loaded.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    # The request id first: on a gunicorn access line it is read from the line's own arguments,
    # which the query-string filter folds into the message.
    request_logger = {"handlers": ["console"], "filters": ["request_id", "strip_query"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "core.request_id.RequestIdFilter"},
            "strip_query": {"()": "core.logging.StripQueryStringFilter"},
        },
        "formatters": {
            "plain": {"format": "%(asctime)s [%(request_id)s] %(levelname)s %(name)s %(message)s"},
            "json": {"()": "core.logging.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id", "strip_query"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.server": {**request_logger, "level": "INFO"},
            "django.request": {**request_logger, "level": "WARNING"},
            "gunicorn.access": {**request_logger, "level": "INFO"},
            "gunicorn.error": {**request_logger, "level": "INFO"},
        },
    }
