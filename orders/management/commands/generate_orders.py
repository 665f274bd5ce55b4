"""``manage.py generate_orders --count N --territories T``: realistic, valid orders in bulk (benchmarks).

See ``orders.generation``. Prints what it wrote and how long each phase took, never PHI. Refuses
(CommandError) anything but PostgreSQL and statuses it does not know.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from orders.generation import DEFAULT_STATUS_MIX, Plan, generate


def _mix(text: str) -> dict[str, float]:
    """``completed=76,cancelled=6`` → weights per status."""
    mix = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        status, sep, weight = part.partition("=")
        try:
            mix[status.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise CommandError(f"Not a weight: {part!r} (write status=weight).") from None
    return mix


class Command(BaseCommand):
    help = "Add realistic, valid orders (with their patients, history, stock and timeline) in bulk, for benchmarks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True, help="Orders to add.")
        parser.add_argument("--territories", type=int, default=4, help="Territories gen-01… (created when missing).")
        parser.add_argument("--providers-per-territory", type=int, default=6, help="Providers (each with a doctor).")
        parser.add_argument("--orders-per-patient", type=float, default=5.0, help="Average orders per new patient.")
        parser.add_argument("--years", type=float, default=3.0, help="How far back delivered orders go.")
        parser.add_argument(
            "--statuses",
            type=_mix,
            default=dict(DEFAULT_STATUS_MIX),
            help="Weights per status, e.g. completed=76,cancelled=6,on_hold=3 (default: a practice's history).",
        )
        parser.add_argument("--seed", type=int, default=None, help="Same seed and database: same data.")
        parser.add_argument("--batch-size", type=int, default=2000, help="Orders per COPY transaction.")
        parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="Writer processes.")
        parser.add_argument(
            "--password",
            default=os.environ.get("BENCH_PASSWORD", "bench-password"),
            help="Password of every generated user (BENCH_PASSWORD; default bench-password).",
        )
        parser.add_argument(
            "--bulk",
            choices=("auto", "yes", "no"),
            default="auto",
            help="Load in bulk: the order tables' plain indexes built after loading, references not checked row by"
            " row (needs a superuser; auto: from 50,000 orders).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bars.")

    def handle(self, *args: Any, **options: Any) -> None:
        plan = Plan(
            count=options["count"],
            territories=options["territories"],
            providers_per_territory=options["providers_per_territory"],
            orders_per_patient=options["orders_per_patient"],
            years=options["years"],
            statuses=options["statuses"],
            seed=options["seed"],
            batch_size=options["batch_size"],
            jobs=options["jobs"],
            password=options["password"],
            bulk={"auto": None, "yes": True, "no": False}[options["bulk"]],
        )

        def bar(name: str, total: int) -> Any:
            return tqdm(total=total, desc=name, unit="", disable=options["no_progress"], file=sys.stderr)

        try:
            result = generate(plan, progress=bar)
        except ValueError as error:
            raise CommandError(str(error)) from None
        total = sum(result.orders_by_status.values())
        self.stdout.write(
            f"Added {total} orders and {result.patients} patients in territories {', '.join(result.territory_codes)}."
        )
        for status, count in sorted(result.orders_by_status.items(), key=lambda pair: -pair[1]):
            self.stdout.write(f"  {status:<22} {count}")
        phases = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in result.seconds.items())
        self.stdout.write(f"Took {sum(result.seconds.values()):.1f} s ({phases}).")
