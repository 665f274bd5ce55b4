"""Rows of one model, turned into column values by the model's own field code and written with COPY.

``TableRows.add`` takes the values a saved instance would hold, by attribute name (``territory_id``,
``created_at``), and converts each with what its field does on save: an encrypted field seals the
value with ``crypto.seal`` over ``field.encode(value)`` and ``field.associated_data(territory)``
(``EncryptedFieldMixin.sealed_value``), a blind index is ``field.compute`` over its source fields,
a JSON field is dumped with its encoder. Fields left out get their model default; auto-increment
keys (history ids) are left to the database. ``auto_now``/``auto_now_add`` timestamps are taken as
given: generated history happened in the past.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.db.models.fields import AutoFieldMixin

from core import crypto
from core.fields import BlindIndexField, EncryptedFieldMixin

Converter = Callable[[Any, dict[str, Any]], Any]
_MISSING = object()


def _sealer(field: EncryptedFieldMixin) -> Converter:
    territory_attname = field.territory_attname

    def seal(value: Any, row: dict[str, Any]) -> Any:
        if value is None:
            return None
        return crypto.seal(field.encode(value), associated_data=field.associated_data(row[territory_attname]))

    return seal


def _indexer(field: BlindIndexField) -> Converter:
    sources = field.sources

    def index(_value: Any, row: dict[str, Any]) -> Any:
        return field.compute(*(row.get(source) for source in sources))

    return index


def _json_dumper(field: models.JSONField) -> Converter:
    encoder = field.encoder or DjangoJSONEncoder

    def dump(value: Any, _row: dict[str, Any]) -> Any:
        return None if value is None else json.dumps(value, cls=encoder)

    return dump


def _plain(value: Any, _row: dict[str, Any]) -> Any:
    return value


def _converter(field: models.Field) -> Converter:
    if isinstance(field, EncryptedFieldMixin):
        return _sealer(field)
    if isinstance(field, BlindIndexField):
        return _indexer(field)
    if isinstance(field, models.JSONField):
        return _json_dumper(field)
    return _plain


class TableRows:
    """Rows waiting to be written to one model's table (``write`` empties it)."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self.table = model._meta.db_table
        fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]
        self.attnames = [f.attname for f in fields]
        self.columns = [f.column for f in fields]
        # Only fields whose saved value differs from the attribute's need converting.
        self.conversions = [
            (position, converter)
            for position, converter in enumerate(_converter(f) for f in fields)
            if converter is not _plain
        ]
        # What a save writes for a field the caller leaves out: its default (a fresh uuid4 per row,
        # "" for a blank text field, None for a nullable one).
        self.defaults: dict[str, Callable[[], Any]] = {f.attname: f.get_default for f in fields}
        self.rows: list[list[Any]] = []

    def add(self, **values: Any) -> None:
        """Queue one row; ``values`` by attribute name (plaintext for encrypted fields)."""
        row = [values.get(attname, _MISSING) for attname in self.attnames]
        if len(values) < len(row) or _MISSING in row:
            for position, attname in enumerate(self.attnames):
                if row[position] is _MISSING:
                    row[position] = values[attname] = self.defaults[attname]()
        for position, convert in self.conversions:
            row[position] = convert(row[position], values)
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def write(self) -> int:
        """COPY the queued rows into the table on the default connection (inside the caller's
        transaction); returns how many were written."""
        if not self.rows:
            return 0
        connection.ensure_connection()
        raw = connection.connection
        assert raw is not None
        columns = ", ".join(f'"{column}"' for column in self.columns)
        with raw.cursor() as cursor, cursor.copy(f'COPY "{self.table}" ({columns}) FROM STDIN') as copy:
            for row in self.rows:
                copy.write_row(row)
        written = len(self.rows)
        self.rows = []
        return written


class Tables:
    """One ``TableRows`` per model, written together."""

    def __init__(self, *models_: type[models.Model]) -> None:
        self.by_model = {model: TableRows(model) for model in models_}

    def __getitem__(self, model: type[models.Model]) -> TableRows:
        return self.by_model[model]

    def write(self) -> dict[str, int]:
        """Write every table's queued rows; rows written per table."""
        return {rows.table: rows.write() for rows in self.by_model.values()}
