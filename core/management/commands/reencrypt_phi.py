"""``manage.py reencrypt_phi``: move every encrypted value to the active PHI key.

After a new key is added to ``PHI_ENCRYPTION_KEYS`` and ``PHI_ACTIVE_KEY_ID`` names it, this
finds every row, in every installed model with encrypted fields (simple-history's historical
models included), holding a token sealed with another key, and re-seals it with the active key.

How it works, and why:

- Models are found through the app registry, so ``core`` needs no import of the apps above it.
- Tokens are read raw (``values_list``) and never turned into model instances: the plaintext is
  opened with the same associated data it was sealed with (the row's territory id and the field
  name) and sealed again at once, without decoding to a Python value, so the stored text is
  exactly what it was. Values stay in memory only for the batch.
- Rows are written with ``QuerySet.update()`` and ``Sealed`` tokens, never ``save()``: a save
  would write a history row, bump ``updated_at`` and run model logic, and re-encryption is not a
  change of the record.
- Work goes in batches of ``--batch-size`` rows in primary-key order, each in its own
  transaction with the batch locked (``select_for_update``), so a save racing with the command
  either waits for the batch or is read after it. The command can be interrupted and run again:
  it only looks at rows that still hold a token of another key.
- Tables with user-defined triggers (on PostgreSQL): ``orders_orderevent`` has a trigger that
  refuses every UPDATE, because the order timeline is immutable. Re-sealing a token changes its
  ciphertext but not the record, so for such a table each batch transaction runs with
  ``session_replication_role = replica``, which PostgreSQL applies to this transaction only and
  which skips ordinary triggers (foreign keys are not affected: only the token columns change).
  Other sessions keep the trigger in force throughout, unlike ``ALTER TABLE ... DISABLE TRIGGER``,
  which would also take an exclusive lock on the table. The previous value is restored at the end
  of the batch, so the trigger is back in force even when the command runs inside a larger
  transaction. Changing the setting needs a PostgreSQL superuser (or, from PostgreSQL 15, a role
  granted SET on it); without it the command stops with an explanation before writing.
- A token that does not open (a key that is no longer configured, damaged data) is left as it is
  and reported by model, primary key and field; the command then exits with an error.

``--dry-run`` counts what would be re-encrypted and writes nothing. Nothing here prints PHI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections, models, router, transaction
from django.db.models import Q

from core import crypto
from core.fields import EncryptedFieldMixin, Sealed


@dataclass
class ModelResult:
    label: str
    total: int  # rows holding at least one token of another key when the model was reached
    rows: int = 0  # rows re-encrypted (or that would be, with --dry-run)
    values: int = 0  # tokens re-encrypted
    failures: list[str] = field(default_factory=list)  # "pk field" of tokens that did not open


def encrypted_models() -> list[tuple[type[models.Model], list[EncryptedFieldMixin]]]:
    """Concrete models that own a table with encrypted columns, with those fields."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedFieldMixin)]
        if fields:
            found.append((model, fields))
    return sorted(found, key=lambda item: item[0]._meta.label)


def _stale_condition(fields: list[EncryptedFieldMixin], prefix: str) -> Q:
    """Rows where some field holds a token that does not start with the active key's prefix."""
    condition = Q()
    for f in fields:
        condition |= Q(**{f"{f.attname}__isnull": False}) & ~Q(**{f"{f.attname}__startswith": prefix})
    return condition


def _has_user_triggers(connection: Any, table: str) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal)",
            [connection.ops.quote_name(table)],
        )
        return bool(cursor.fetchone()[0])


@contextmanager
def _triggers_bypassed(connection: Any) -> Iterator[None]:
    """Skip ordinary triggers for the rest of the current transaction's batch (PostgreSQL only).

    Call inside the batch's atomic block; restores the previous role before leaving it.
    """
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        previous = cursor.fetchone()[0]
        try:
            with transaction.atomic(using=connection.alias):
                cursor.execute("SELECT set_config('session_replication_role', 'replica', true)")
        except DatabaseError as exc:
            raise CommandError(
                "Re-encrypting a table with triggers needs a database role allowed to set "
                "session_replication_role (a PostgreSQL superuser)."
            ) from exc
        yield
        cursor.execute("SELECT set_config('session_replication_role', %s, true)", [previous])


class Command(BaseCommand):
    help = "Re-encrypt every PHI value that is not sealed with the active key (PHI_ACTIVE_KEY_ID)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction (default 500).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be re-encrypted; write nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size: int = options["batch_size"]
        dry_run: bool = options["dry_run"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        active_key_id = crypto.keyring().active_key_id
        prefix = f"{crypto.TOKEN_VERSION}:{active_key_id}:"
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write(f"Active key: {active_key_id}{' (dry run: nothing is written)' if dry_run else ''}")

        results = [
            self._reencrypt_model(model, fields, prefix=prefix, batch_size=batch_size, dry_run=dry_run, verb=verb)
            for model, fields in encrypted_models()
        ]

        self.stdout.write("")
        changed = [r for r in results if r.rows or r.failures]
        if not changed:
            self.stdout.write(self.style.SUCCESS(f"Nothing to do: every encrypted value is under key {active_key_id}."))
            return
        self.stdout.write(f"Summary ({verb}):")
        for result in changed:
            self.stdout.write(f"  {result.label}: {result.rows} rows, {result.values} values")
        self.stdout.write(
            f"  total: {sum(r.rows for r in results)} rows, {sum(r.values for r in results)} values "
            f"in {len([r for r in results if r.rows])} models"
        )
        failures = [f"{r.label} {failure}" for r in results for failure in r.failures]
        if failures:
            for failure in failures:
                self.stderr.write(f"  did not open: {failure}")
            raise CommandError(
                f"{len(failures)} values could not be opened with the configured keys and were left as they are."
            )

    def _reencrypt_model(
        self,
        model: type[models.Model],
        fields: list[EncryptedFieldMixin],
        *,
        prefix: str,
        batch_size: int,
        dry_run: bool,
        verb: str,
    ) -> ModelResult:
        label = model._meta.label
        alias = router.db_for_write(model)
        connection = connections[alias]
        manager = model._base_manager.db_manager(alias)
        stale = manager.filter(_stale_condition(fields, prefix))
        result = ModelResult(label=label, total=stale.count())
        if not result.total:
            self.stdout.write(f"{label}: nothing to do")
            return result

        territory_attnames = sorted({f.territory_attname for f in fields})
        columns = ["pk", *territory_attnames, *(f.attname for f in fields)]
        bypass_triggers = not dry_run and _has_user_triggers(connection, model._meta.db_table)
        if bypass_triggers:
            self.stdout.write(f"{label}: table has triggers; they are skipped for the re-encryption batches")

        last_pk: Any = None
        while True:
            with transaction.atomic(using=alias):
                batch = stale if last_pk is None else stale.filter(pk__gt=last_pk)
                if not dry_run:
                    batch = batch.select_for_update()
                rows = list(batch.order_by("pk").values_list(*columns)[:batch_size])
                if not rows:
                    break
                last_pk = rows[-1][0]
                if bypass_triggers:
                    with _triggers_bypassed(connection):
                        self._reencrypt_rows(manager, fields, territory_attnames, rows, prefix, result, dry_run)
                else:
                    self._reencrypt_rows(manager, fields, territory_attnames, rows, prefix, result, dry_run)
            self.stdout.write(f"{label}: {result.rows}/{result.total} rows {verb}")
        return result

    @staticmethod
    def _reencrypt_rows(
        manager: models.Manager[Any],
        fields: list[EncryptedFieldMixin],
        territory_attnames: list[str],
        rows: list[tuple[Any, ...]],
        prefix: str,
        result: ModelResult,
        dry_run: bool,
    ) -> None:
        for row in rows:
            pk = row[0]
            territories = dict(zip(territory_attnames, row[1 : 1 + len(territory_attnames)], strict=True))
            tokens = row[1 + len(territory_attnames) :]
            updates: dict[str, Sealed] = {}
            for f, token in zip(fields, tokens, strict=True):
                if token is None or token.startswith(prefix):
                    continue
                associated_data = f.associated_data(territories[f.territory_attname])
                try:
                    plaintext = crypto.open_token(token, associated_data=associated_data)
                except crypto.PHIDecryptionError:
                    result.failures.append(f"pk={pk} field={f.name}")
                    continue
                updates[f.attname] = Sealed(crypto.seal(plaintext, associated_data=associated_data))
            if not updates:
                continue
            if not dry_run:
                manager.filter(pk=pk).update(**updates)
            result.rows += 1
            result.values += len(updates)
