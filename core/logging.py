"""Logging filters that keep PHI out of log lines."""

from __future__ import annotations

import logging
import re

# A query string starts at a "?" followed by a character and runs, whole, to the request line's
# " HTTP/x.y" (the last one on the line: the query itself may hold spaces, quotes or that text) or,
# with none after it, to the end of the line. Nothing inside it ends it early: an apostrophe
# (O'Brien), a quote, a space or an ampersand are all part of what a person typed.
_QUERY = re.compile(r"\?(?=\S)(?:[^\r\n]*(?= HTTP/\d)|[^\r\n]*)")
STRIPPED = "?…"


def strip_query_strings(text: str) -> str:
    """``text`` with every query string replaced by ``?…`` (idempotent)."""
    return _QUERY.sub(STRIPPED, text)


class StripQueryStringFilter(logging.Filter):
    """Removes query strings from log lines (a search term may be a patient's name).

    Works on the formatted message, so it covers every way a request line reaches a log:
    runserver's ``django.server`` lines (tuple arguments, and the "Bad request syntax" line that
    repeats a raw request line), ``django.request``, and gunicorn's access log (a mapping of
    atoms, request line and referer among them). The record keeps the cleaned message with no
    arguments; attributes other handlers read (``status_code``, ``request``) stay.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: clean each part
            message = f"{record.msg} {record.args!r}"
        record.msg = strip_query_strings(message)
        record.args = ()
        return True
