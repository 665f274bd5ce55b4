"""Compute the name prefix indexes (0003) of the patients that existed before them.

Each row's names are opened with the field's own code (the same ``BlindIndexField.compute`` a save
runs) and only the two index columns are written, in batches, without a save: no history row, no
change of ``updated_at``. Rows that already have both indexes are left alone, so the migration can
run again. Historical rows are not searched and keep NULL.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.db.models import Q

BATCH_SIZE = 500


def backfill_name_prefix_indexes(apps: Any, schema_editor: Any) -> None:
    patient_model = apps.get_model("patients", "Patient")
    first_field = patient_model._meta.get_field("first_name_prefix_index")
    last_field = patient_model._meta.get_field("last_name_prefix_index")
    missing = patient_model._base_manager.using(schema_editor.connection.alias).filter(
        Q(first_name_prefix_index__isnull=True) | Q(last_name_prefix_index__isnull=True)
    )
    last_pk = None
    while True:
        batch_query = missing if last_pk is None else missing.filter(pk__gt=last_pk)
        columns = ("pk", "territory_id", "first_name", "last_name", "first_name_prefix_index", "last_name_prefix_index")
        batch = list(batch_query.only(*columns).order_by("pk")[:BATCH_SIZE])
        if not batch:
            return
        last_pk = batch[-1].pk
        changed = []
        for patient in batch:
            first = first_field.compute(patient.first_name)
            last = last_field.compute(patient.last_name)
            if (first, last) != (patient.first_name_prefix_index, patient.last_name_prefix_index):
                patient.first_name_prefix_index, patient.last_name_prefix_index = first, last
                changed.append(patient)
        patient_model._base_manager.using(schema_editor.connection.alias).bulk_update(
            changed, ["first_name_prefix_index", "last_name_prefix_index"]
        )


class Migration(migrations.Migration):
    # Each batch commits on its own (bulk_update is atomic per batch): a large table is not held
    # locked in one transaction, and a run that stops keeps what it did (rows done are skipped).
    atomic = False

    dependencies = [
        ("patients", "0003_name_prefix_indexes"),
    ]

    operations = [
        migrations.RunPython(backfill_name_prefix_indexes, migrations.RunPython.noop, elidable=True),
    ]
