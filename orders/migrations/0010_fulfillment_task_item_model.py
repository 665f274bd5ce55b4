"""Name the table behind FulfillmentTask.items as a model (FulfillmentTaskItem) so it reads as
"2 × CPAP mask (A7030)" in the back office. The table, its columns and its unique pair stay as
they are: only Django's state changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0009_order_drafts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="FulfillmentTaskItem",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        (
                            "fulfillmenttask",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, to="orders.fulfillmenttask"
                            ),
                        ),
                        (
                            "orderitem",
                            models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="orders.orderitem"),
                        ),
                    ],
                    options={
                        "verbose_name": "task item",
                        "db_table": "orders_fulfillmenttask_items",
                        "unique_together": {("fulfillmenttask", "orderitem")},
                    },
                ),
                migrations.AlterField(
                    model_name="fulfillmenttask",
                    name="items",
                    field=models.ManyToManyField(
                        blank=True,
                        related_name="fulfillment_tasks",
                        through="orders.FulfillmentTaskItem",
                        to="orders.orderitem",
                    ),
                ),
            ],
        ),
    ]
