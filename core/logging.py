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

# A link token: the path segment after /pay/ (payment links) or /p/ (the patient's pages). Whoever
# holds one can open the link, so it never reaches a log whole.
_LINK_TOKEN = re.compile(r"(?P<prefix>/(?:pay|p)/)(?P<token>[^\s/?#]+)")
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
