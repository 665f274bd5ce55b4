"""Reads that may come from a read replica, and everything else from the primary.

A replica is a copy of the primary that lags it by a little. What may read from it is said
explicitly, by code that can live with that lag — reports, exports and analytics — inside
``reading_from_replica()``; everything else reads from the primary, so a page always sees what the
request before it wrote. Whatever the code asks for:

- every write goes to the primary (an object read from the replica is saved on the primary);
- a read inside a transaction on the primary (``transaction.atomic()``) stays on the primary, since it
  may depend on the transaction's own writes or locks;
- migrations run on the primary only (the replica receives the schema by replication).

The replica is the database alias named by ``settings.DATABASE_REPLICA_ALIAS`` ("replica" when
``DATABASE_REPLICA_URL`` is set); without one, ``replica_alias()`` is "default" and nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

# Per thread and per asyncio task: one request's report never moves another request's reads.
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


def replica_alias() -> str:
    """The database alias reports read from: the configured replica, else "default"."""
    alias = getattr(settings, "DATABASE_REPLICA_ALIAS", "") or DEFAULT_DB_ALIAS
    return alias if alias in settings.DATABASES else DEFAULT_DB_ALIAS


def in_write_transaction(alias: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether code runs inside an atomic block on ``alias``.

    The blocks a test case opens around each test do not count (as for Django's ``durable`` check):
    they stand for the autocommit a request runs in, not for a transaction of the code under test.
    """
    return any(not getattr(block, "_from_testcase", False) for block in connections[alias].atomic_blocks)


@contextmanager
def reading_from_replica() -> Iterator[str]:
    """Within the block, reads outside a transaction come from the replica; yields the alias used.

    For reports, exports and analytics that may lag the primary by the replica's delay. Evaluate the
    querysets inside the block (a queryset picks its database when it runs). Writes, and reads inside
    ``transaction.atomic()``, still use the primary.
    """
    token = _replica_reads.set(True)
    try:
        yield replica_alias()
    finally:
        _replica_reads.reset(token)


class PrimaryReplicaRouter:
    """Django's database router for a primary ("default") and an optional read replica."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        if _replica_reads.get() and not in_write_transaction():
            return replica_alias()
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # Both aliases hold the same rows: an order read from the replica may point at a product from the primary.
        ours = {DEFAULT_DB_ALIAS, replica_alias()}
        if obj1._state.db in ours and obj2._state.db in ours:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if db != DEFAULT_DB_ALIAS and db == replica_alias():
            return False
        return None
