"""Orders verified before reviews were decided by a person kept the ``needs_review`` disposition of
their last check, so they stayed in the review queue and in "Needs your action" after verification.

Verifying now sets the disposition to ``clear`` (``orders.services.order_transition``). This brings
the orders verified earlier in line: an order past verification whose last compliance entry on the
timeline came before its verification (so nothing found since, such as a pharmacy's refusal, asks
for a review) gets ``clear``. Only sequence numbers are compared: no PHI is read.
"""

from django.db import migrations
from django.db.models import Max, OuterRef, Subquery

PAST_VERIFICATION = ["verified", "awaiting_payment", "paid", "in_progress", "shipped", "completed"]


def clear_decided_reviews(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    OrderEvent = apps.get_model("orders", "OrderEvent")

    def last(**filters):
        return Subquery(
            OrderEvent.objects.filter(order=OuterRef("pk"), **filters)
            .values("order")
            .annotate(last=Max("sequence"))
            .values("last")[:1]
        )

    stale = (
        Order.objects.filter(status__in=PAST_VERIFICATION, ai_disposition="needs_review")
        .annotate(
            verified_at_sequence=last(kind="transition", transition="verify"),
            checked_at_sequence=last(kind="compliance"),
        )
        .filter(verified_at_sequence__isnull=False)
    )
    ids = [
        order.pk
        for order in stale
        if order.checked_at_sequence is None or order.checked_at_sequence < order.verified_at_sequence
    ]
    # The column is the summary of the last decision (the snapshot and timeline hold the record), so
    # it is updated without a history row, as the compliance checks themselves do.
    Order.objects.filter(pk__in=ids).update(ai_disposition="clear")


class Migration(migrations.Migration):
    dependencies = [("orders", "0010_fulfillment_task_item_model")]

    operations = [migrations.RunPython(clear_decided_reviews, migrations.RunPython.noop)]
