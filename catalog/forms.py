"""Back-office forms for stock: they read input only, the stock services decide and write.

Rules such as "receive at least one unit" or "say why" live in ``catalog.services``; a view
shows the service's ``ValidationFailed`` on the form with ``add_service_errors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.contrib.admin.widgets import AdminDateWidget

from .models import Product, Warehouse


def add_service_errors(form: forms.Form, details: Mapping[str, Sequence[Any]], message: str) -> None:
    """Show a service's ``ValidationFailed`` on ``form``: details under their fields, the rest (or
    ``message`` when there are no details) above the form."""
    if not details:
        form.add_error(None, message)
    for field, messages in details.items():
        form.add_error(field if field in form.fields else None, [str(text) for text in messages])


class ReceiveStockForm(forms.Form):
    """A receipt: units of a product into a lot of a warehouse (the lot is created on its first receipt)."""

    product = forms.ModelChoiceField(queryset=Product.objects.filter(active=True).order_by("sku"))
    warehouse = forms.ModelChoiceField(queryset=Warehouse.objects.filter(active=True).order_by("code"))
    lot_number = forms.CharField(max_length=64)
    expiration_date = forms.DateField(
        required=False,
        widget=AdminDateWidget,
        help_text="YYYY-MM-DD. Required for perishable products; leave empty for stock that does not expire.",
    )
    quantity = forms.IntegerField(help_text="Units received.")

    def clean_lot_number(self) -> str:
        return str(self.cleaned_data["lot_number"]).strip()


class AdjustStockForm(forms.Form):
    """A correction of one lot's on-hand count."""

    delta = forms.IntegerField(
        label="Change in units on hand", help_text="Positive adds units (a found box), negative removes them."
    )
    reason = forms.CharField(
        max_length=300,
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="Why the count changes, e.g. cycle count, damaged carton. Kept in the lot's ledger.",
    )


class ExpiringLotsForm(forms.Form):
    """The expiring-lots report's window."""

    days = forms.IntegerField(min_value=0, max_value=3650, label="Expiring within (days)")
