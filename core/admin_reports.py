"""Report pages in the back office: a table on the page (cards on a phone) and the same rows as CSV."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

REPORT_TEMPLATE = "admin/report.html"


def cell_text(value: Any) -> str:
    """A report value as shown and written to CSV: dates as YYYY-MM-DD, numbers as digits."""
    return value.isoformat() if isinstance(value, dt.date) else str(value)


@dataclass(frozen=True)
class ReportColumn:
    label: str
    numeric: bool = False


@dataclass(frozen=True)
class ReportRow:
    """One line of a report: ``values`` as written to the CSV file, ``url`` the record's admin page."""

    values: tuple[Any, ...]
    url: str = ""
    css_class: str = ""


@dataclass(frozen=True)
class Report:
    """A report's table; the page and the CSV file show the same rows."""

    columns: tuple[ReportColumn, ...]
    rows: list[ReportRow]

    @property
    def table(self) -> list[dict[str, Any]]:
        """Rows for the template, each cell with its column's label (shown beside it on a phone)."""
        return [
            {
                "url": row.url,
                "css_class": row.css_class,
                "cells": [
                    {"label": column.label, "value": cell_text(value), "numeric": column.numeric}
                    for column, value in zip(self.columns, row.values, strict=True)
                ],
            }
            for row in self.rows
        ]

    def csv_response(self, filename: str) -> HttpResponse:
        """The report as a CSV download: a header row, then one row per line (dates as YYYY-MM-DD)."""
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        writer = csv.writer(response)
        writer.writerow([column.label for column in self.columns])
        writer.writerows([cell_text(value) for value in row.values] for row in self.rows)
        return response


def wants_csv(request: HttpRequest) -> bool:
    return request.GET.get("format") == "csv"


def csv_url(request: HttpRequest) -> str:
    """The current page's address asking for the CSV file (other parameters kept)."""
    query = request.GET.copy()
    query["format"] = "csv"
    return f"{request.path}?{query.urlencode()}"


def render_report(
    model_admin: admin.ModelAdmin, request: HttpRequest, report: Report, *, title: str, intro: str, **context: Any
) -> TemplateResponse:
    """The report page: its table, a link to the same rows as CSV, and any ``context`` (a filter form)."""
    return TemplateResponse(
        request,
        REPORT_TEMPLATE,
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "title": title,
            "intro": intro,
            "report": report,
            "csv_url": csv_url(request),
            "today": timezone.localdate(),
            **context,
        },
    )
