"""Realistic, valid orders in bulk, for benchmarks (``manage.py generate_orders``).

``generate(plan)`` adds ``plan.count`` orders to a PostgreSQL database in the shape the services
give them (``lifecycle``): territories with doctors, ops staff and credentialed providers
(memberships and guardian permissions through ``membership_grant``), the demo catalog with a lot
per product and quarter, patients with encrypted PHI, blind indexes and coverage, and orders spread
over ``plan.years`` in every status, each with its lines, timeline, outbox events, compliance
snapshots, history, stock reservations and ledger, and fulfillment tasks where its status implies
them. Terminal orders are spread over the years; open ones are recent, as in a running practice.

Rows are written with COPY in batches of ``plan.batch_size`` orders, one transaction per batch,
by ``plan.jobs`` processes; large runs load in bulk (``Plan.bulk``). A second run adds more (new
patients and orders in the same territories); a run stopped half-way leaves whole batches behind,
and stock is brought in line with the ledger at the end of every run (``_stock_settle``).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, connections, transaction
from django.utils import timezone

from catalog.models import Lot, StockMovement
from orders.models import Order, OrderStatus
from patients.models import Coverage, Patient

from .lifecycle import WRITTEN_MODELS, OrderWriter, References
from .templates import Outcomes, outcomes_build
from .world import (
    LOT_PREFIX,
    Catalog,
    SamplePatient,
    TerritoryWorld,
    _quarter_start,
    catalog_ensure,
    patients_create,
    people_ensure,
)

# Share of each status in a practice's order history (most orders were delivered long ago).
DEFAULT_STATUS_MIX: dict[str, float] = {
    OrderStatus.COMPLETED: 76,
    OrderStatus.CANCELLED: 6,
    OrderStatus.REJECTED: 2,
    OrderStatus.SHIPPED: 3,
    OrderStatus.IN_PROGRESS: 2,
    OrderStatus.PAID: 1,
    OrderStatus.AWAITING_PAYMENT: 1,
    OrderStatus.VERIFIED: 2,
    OrderStatus.ON_HOLD: 3,
    OrderStatus.PENDING_VERIFICATION: 4,
}


@dataclass(frozen=True)
class Plan:
    """What to generate. ``statuses`` weighs each status (any positive numbers; statuses left out
    get none); ``stock_buffer`` units stay available in each product's current lot for new orders."""

    count: int
    territories: int = 4
    providers_per_territory: int = 6
    orders_per_patient: float = 5.0
    years: float = 3.0
    statuses: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STATUS_MIX))
    seed: int | None = None
    batch_size: int = 2000
    jobs: int = 1
    password: str = "bench-password"
    stock_buffer: int = 100_000
    # Bulk loading: the written tables' plain secondary indexes are dropped while loading and built
    # after, and the foreign keys of the rows written are not checked one by one (the rows are built
    # referencing rows that exist; the tests check them with the constraints on). None: for 50,000
    # orders or more, where keeping a dozen indexes per table and every reference checked costs most.
    bulk: bool | None = None


@dataclass
class Result:
    orders_by_status: dict[str, int]
    patients: int
    territory_codes: list[str]
    seconds: dict[str, float]  # per phase
    samples: list[SamplePatient]


ProgressBar = Callable[[str, int], Any]  # (description, total) -> an object with update(n) and close()


def status_counts(count: int, mix: dict[str, float]) -> dict[str, int]:
    """``count`` split by the weights of ``mix`` (largest remainders), exactly ``count`` in all."""
    unknown = set(mix) - set(OrderStatus.values)
    if unknown or any(weight < 0 for weight in mix.values()) or not sum(mix.values()):
        raise ValueError(f"Weigh statuses among {', '.join(OrderStatus.values)} with positive numbers.")
    total = sum(mix.values())
    exact = {status: count * weight / total for status, weight in mix.items() if weight}
    counts = {status: int(share) for status, share in exact.items()}
    by_remainder = sorted(exact, key=lambda status: exact[status] - counts[status], reverse=True)
    for status in by_remainder[: count - sum(counts.values())]:
        counts[status] += 1
    return counts


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def generate(plan: Plan, *, progress: ProgressBar | None = None) -> Result:
    """Add ``plan.count`` orders (and the world they need) to the default database, PostgreSQL only.

    Raises ValueError for a plan that cannot be generated (no orders, unknown statuses, not
    PostgreSQL)."""
    if connection.vendor != "postgresql":
        raise ValueError("generate_orders writes with PostgreSQL's COPY: set DATABASE_URL to a PostgreSQL database.")
    if plan.count < 1 or plan.territories < 1 or plan.providers_per_territory < 1:
        raise ValueError("Ask for at least one order, territory and provider per territory.")
    counts = status_counts(plan.count, plan.statuses)
    bar_of: ProgressBar = progress or (lambda _name, _total: _NoBar())
    seconds: dict[str, float] = {}
    existing = Order.objects.count()
    # Seeded by the plan and what is already there: a second run with the same seed adds new data.
    rng = random.Random(f"{plan.seed}:{existing}" if plan.seed is not None else None)  # noqa: S311 - test data
    now = timezone.now()
    first_day = (now - dt.timedelta(days=365 * plan.years)).date()

    with _timed(seconds, "world"):
        catalog = catalog_ensure(first_day=first_day, last_day=now.date())
        worlds = people_ensure(
            territories=plan.territories,
            providers_per_territory=plan.providers_per_territory,
            password=plan.password,
            rng=rng,
        )
        outcomes = outcomes_build(catalog.products)
    # At least three patients per provider, so that each territory has patients of every payer profile.
    patient_count = max(
        3 * plan.territories * plan.providers_per_territory, round(plan.count / plan.orders_per_patient)
    )
    with _timed(seconds, "patients"):
        bar = bar_of("patients", patient_count)
        samples = patients_create(
            worlds=worlds,
            count=patient_count,
            first_day=first_day,
            rng=rng,
            batch_size=max(plan.batch_size, 1000),
            progress=bar.update,
        )
        bar.close()

    statuses = [status for status, n in counts.items() for _ in range(n)]
    rng.shuffle(statuses)
    references = References(
        offset=rng.randrange(2**30),
        taken=frozenset(Order.objects.values_list("reference", flat=True)),
        run_size=plan.count,
    )
    bulk = plan.bulk if plan.bulk is not None else plan.count >= 50_000
    shared = _Shared(catalog, worlds, outcomes, references, now, plan.seed, existing, bulk)
    with _indexes_deferred(enabled=bulk, timings=seconds), _timed(seconds, "orders"):
        bar = bar_of("orders", plan.count)
        written: Counter[str] = Counter()
        chunks = [(start, statuses[start : start + plan.batch_size]) for start in range(0, plan.count, plan.batch_size)]
        for batch_counts in _run_batches(shared, chunks, jobs=plan.jobs):
            written.update(batch_counts)
            bar.update(sum(batch_counts.values()))
        bar.close()
    with _timed(seconds, "stock"):
        _stock_settle(catalog, now=now, buffer=plan.stock_buffer)
    with _timed(seconds, "analyze"):
        _vacuum_analyze()
    return Result(
        orders_by_status=dict(written),
        patients=patient_count,
        territory_codes=[world.code for world in worlds],
        seconds=seconds,
        samples=samples,
    )


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    seconds[phase] = round(time.monotonic() - started, 1)


@contextmanager
def _indexes_deferred(*, enabled: bool, timings: dict[str, float]) -> Iterator[None]:
    """Without the order tables' plain indexes while the block runs (primary keys, unique and other
    constraints stay), then build them again from their definitions, also when the block fails."""
    if not enabled:
        yield
        return
    tables = [model._meta.db_table for model in WRITTEN_MODELS]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT index.relname, pg_get_indexdef(pg_index.indexrelid)
            FROM pg_index
            JOIN pg_class index ON index.oid = pg_index.indexrelid
            JOIN pg_class tab ON tab.oid = pg_index.indrelid
            WHERE tab.relname = ANY(%s) AND NOT pg_index.indisprimary AND NOT pg_index.indisunique
              AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE pg_constraint.conindid = pg_index.indexrelid)
            """,
            [tables],
        )
        definitions = cursor.fetchall()
        for name, _definition in definitions:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
    try:
        yield
    finally:
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for _name, definition in definitions:
                cursor.execute(definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        timings["indexes"] = round(time.monotonic() - started, 1)


@dataclass
class _Shared:
    """What every batch needs; worker processes inherit it when they are forked."""

    catalog: Catalog
    worlds: list[TerritoryWorld]
    outcomes: Outcomes
    references: References
    now: dt.datetime
    seed: int | None
    existing: int
    bulk: bool


_shared: _Shared | None = None


def _run_batches(shared: _Shared, chunks: list[tuple[int, list[str]]], *, jobs: int) -> Iterable[Counter[str]]:
    """Each chunk's orders written in a transaction of their own; in ``jobs`` forked processes."""
    global _shared
    _shared = shared
    if jobs <= 1:
        yield from map(_batch, chunks)
        return
    # The children open their own connections: none may be inherited open.
    connections.close_all()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap_unordered(_batch, chunks)


def _batch(chunk: tuple[int, list[str]]) -> Counter[str]:
    start, statuses = chunk
    shared = _shared
    assert shared is not None
    rng = random.Random(  # noqa: S311 - test data, not secrets
        f"{shared.seed}:{shared.existing}:{start}" if shared.seed is not None else None
    )
    writer = OrderWriter(
        catalog=shared.catalog,
        outcomes_held=shared.outcomes.held,
        outcomes_passing=shared.outcomes.passing,
        references=shared.references,
        now=shared.now,
        rng=rng,
    )
    written: Counter[str] = Counter()
    worlds = shared.worlds
    for offset, status in enumerate(statuses):
        first = rng.randrange(len(worlds))
        # A territory without a fitting patient (too few generated) passes the order to the next.
        for turn in range(len(worlds)):
            if writer.order(index=start + offset, status=status, world=worlds[(first + turn) % len(worlds)]):
                written[status] += 1
                break
        else:
            raise ValueError(f"No territory has a patient for a {status} order: generate more orders per territory.")
    with transaction.atomic():
        if shared.bulk:
            with connection.cursor() as cursor:
                # Foreign-key triggers off for this transaction only (needs a superuser, as pg_restore
                # --disable-triggers does); the rows reference the world and each other as built.
                cursor.execute("SET LOCAL session_replication_role = replica")
        writer.write()
    return written


def _stock_settle(catalog: Catalog, *, now: dt.datetime, buffer: int) -> None:
    """Receive into each generated lot what its orders took and hold (one receipt on the day the
    lot came in), plus ``buffer`` available units in each current-quarter lot, and set every
    generated lot's counters to the sums of its ledger, as ``catalog.services`` keeps them."""
    quarter = _quarter_start(now.date())
    current = [str(lot_id) for (_sku, lot_quarter), lot_id in catalog.lots.items() if lot_quarter == quarter]
    LOTS, MOVEMENTS = Lot._meta.db_table, StockMovement._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # Table names come from the models; every value is a parameter.
        cursor.execute(
            f"""
            INSERT INTO {MOVEMENTS} (id, lot_id, kind, on_hand_delta, reserved_delta, reason, order_id,
                                                   actor_id, created_at)
            SELECT gen_random_uuid(), lot.id, 'receipt', receipt.quantity, 0, 'received', NULL, NULL, lot.received_at
            FROM {LOTS} lot
            LEFT JOIN (
                SELECT lot_id, SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved
                FROM {MOVEMENTS} GROUP BY lot_id
            ) ledger ON ledger.lot_id = lot.id
            CROSS JOIN LATERAL (
                SELECT COALESCE(ledger.reserved, 0) - COALESCE(ledger.on_hand, 0)
                       + CASE WHEN lot.id::text = ANY(%s) THEN %s ELSE 0 END AS quantity
            ) receipt
            WHERE lot.lot_number LIKE %s AND receipt.quantity > 0
            """,  # noqa: S608
            [current, buffer, f"{LOT_PREFIX}%"],
        )
        cursor.execute(
            f"""
            UPDATE {LOTS} lot SET quantity_on_hand = ledger.on_hand, quantity_reserved = ledger.reserved
            FROM (
                SELECT lot_id, SUM(on_hand_delta) AS on_hand, SUM(reserved_delta) AS reserved
                FROM {MOVEMENTS} GROUP BY lot_id
            ) ledger
            WHERE ledger.lot_id = lot.id AND lot.lot_number LIKE %s
            """,  # noqa: S608
            [f"{LOT_PREFIX}%"],
        )


def _vacuum_analyze() -> None:
    """Fresh planner statistics (and visibility maps) for the tables written, as autovacuum would
    leave them in a database that grew over years. Inside a transaction (a test), statistics only."""
    models = [*WRITTEN_MODELS, Lot, Patient, Patient.history.model, Coverage, Coverage.history.model]
    tables = {model._meta.db_table for model in models}
    with connection.cursor() as cursor:
        for table in sorted(tables):
            cursor.execute(f'ANALYZE "{table}"' if connection.in_atomic_block else f'VACUUM (ANALYZE) "{table}"')
