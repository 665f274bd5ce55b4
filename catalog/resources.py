"""CSV files of the catalog and its stock for the back office (django-import-export resources).

- ``ProductResource``: one row per product, keyed by SKU (``PRODUCT_COLUMNS``). Importing a row
  creates the product or changes the columns the file has, through ``catalog.services``
  (``product_create`` / ``product_update``): the importing admin's permissions and every catalog
  rule (the model's validators, reorder point within par level, dropship needs a vendor).
- ``LotStockResource``: the export of every lot with its counters (``STOCK_COLUMNS``).
- ``StockReceiptResource``: an import of receipts (``RECEIPT_COLUMNS``), each received through
  ``catalog.services.stock_receive`` so the ledger explains every unit.

Imports are all or nothing. Every row is checked and each problem is a ``ValidationError`` keyed
by column, so the admin lists them per row; the import runs in one transaction (``use_transactions``)
that is rolled back when any row fails (the admin passes ``rollback_on_validation_errors``).
The writes themselves happen in services, so the preview (a dry run) runs the same checks as the
real import and is then rolled back. A file whose header has unknown or missing columns is refused.

Cells: text is stripped; whole numbers are digits with an optional minus sign (``dispensing_units_per_unit``
and ``days_of_supply`` may be empty: not known); yes/no columns take true/false (or 1/0, yes/no, any
case); dates are YYYY-MM-DD; ``vendor``, ``warehouse`` and the stock file's ``sku`` name a record by
its code or SKU. ``dispensing_unit`` is one of ``catalog.models.DispensingUnit`` (tablet, capsule, mL,
pen) or empty.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ImproperlyConfigured, ValidationError
from django.db import models, router
from import_export import resources, widgets
from import_export.fields import Field
from import_export.instance_loaders import BaseInstanceLoader

from core.exceptions import ValidationFailed

from .models import Lot, Product, Vendor, Warehouse
from .services import product_create, product_data_of, product_update, stock_receive

PRODUCT_COLUMNS = (
    "sku",
    "name",
    "hcpcs_code",
    "rxnorm_code",
    "rxnorm_name",
    "strength",
    "dose_form",
    "therapy_type",
    "coverage_tier",
    "price_cents",
    "unit",
    "dispensing_unit",
    "dispensing_units_per_unit",
    "requires_prescription",
    "is_perishable",
    "requires_training",
    "recurring",
    "days_of_supply",
    "par_level",
    "reorder_point",
    "warehouse_fulfillment",
    "dropship_fulfillment",
    "vendor",
    "active",
)
STOCK_COLUMNS = (
    "sku",
    "warehouse",
    "lot_number",
    "expiration_date",
    "quantity_on_hand",
    "quantity_reserved",
    "quantity_available",
)
RECEIPT_COLUMNS = ("sku", "warehouse", "lot_number", "expiration_date", "quantity")

_WHOLE_NUMBER = re.compile(r"-?\d{1,12}")


class FileLayoutError(ValueError):
    """The file's header row does not name the expected columns; nothing in it is imported."""


# --- Cells ----------------------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    return "" if value is None else str(value).strip()


class TextWidget(widgets.Widget):
    """Text without surrounding spaces; an empty cell is an empty string."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> str:
        return _cell_text(value)

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return "" if value is None else str(value)


class WholeNumberWidget(widgets.Widget):
    """A whole number written as digits; anything else (``2.5``, ``ten``) is refused. An empty cell is
    refused too, unless ``allow_empty`` (a count that may be unknown): then it is None."""

    def __init__(self, *, allow_empty: bool = False) -> None:
        super().__init__()
        self.allow_empty = allow_empty

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> int | None:
        text = _cell_text(value)
        if not text and self.allow_empty:
            return None
        if not _WHOLE_NUMBER.fullmatch(text):
            raise ValueError("Enter a whole number.")
        return int(text)

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return "" if value is None else str(value)


class YesNoWidget(widgets.Widget):
    """``true``/``false`` (or ``1``/``0``, ``yes``/``no``, any case); anything else, empty included, is refused."""

    TRUE = frozenset({"true", "1", "yes"})
    FALSE = frozenset({"false", "0", "no"})

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> bool:
        text = _cell_text(value).lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValueError("Enter true or false.")

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return "true" if value else "false"


class IsoDateWidget(widgets.Widget):
    """A date as YYYY-MM-DD; an empty cell is no date."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> dt.date | None:
        if isinstance(value, dt.date):
            return value
        text = _cell_text(value)
        if not text:
            return None
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError("Enter a date as YYYY-MM-DD.") from None

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.isoformat() if value else ""


class CodeWidget(widgets.ForeignKeyWidget):
    """A record named by a unique code (a vendor or warehouse code, a product SKU); empty is none.

    ``missing`` is the message for a code no record has, with ``{}`` for the code. With
    ``active_only`` an inactive record counts as missing.
    """

    def __init__(self, model: type[models.Model], field: str, missing: str, *, active_only: bool = False) -> None:
        super().__init__(model, field=field)
        self.missing = missing
        self.active_only = active_only

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        code = _cell_text(value)
        if not code:
            return None
        records = self.model._default_manager.filter(**{self.field: code})
        if self.active_only:
            records = records.filter(active=True)
        found = records.first()
        if found is None:
            raise ValueError(self.missing.format(code))
        return found


def column(
    name: str, widget: widgets.Widget | None = None, *, attribute: str | None = None, readonly: bool = False
) -> Field:
    """A file column ``name`` read into (and written from) ``attribute``, which defaults to ``name``."""
    return Field(attribute=attribute or name, column_name=name, widget=widget or TextWidget(), readonly=readonly)


def column_errors(details: Mapping[str, Sequence[Any]], columns: Sequence[str]) -> dict[str, list[str]]:
    """A service's ``ValidationFailed.details`` keyed by file column; other keys become row-wide errors."""
    errors: dict[str, list[str]] = {}
    for key, messages in details.items():
        target = key if key in columns else NON_FIELD_ERRORS
        errors.setdefault(target, []).extend(str(message) for message in messages)
    return errors


# --- Shared import behaviour ----------------------------------------------------------------------


class CatalogImportMixin:
    """Header checks, errors keyed by column, and writes that only happen inside a transaction.

    ``required_columns`` must all be in the header and every header must be a known column;
    otherwise the file is refused as a whole (a ``FileLayoutError``) and no row is read.
    """

    required_columns: tuple[str, ...] = ()

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        dataset.headers = [_cell_text(header) for header in dataset.headers or []]
        known = [field.column_name for field in self.get_import_fields()]  # type: ignore[attr-defined]
        unknown = [header for header in dataset.headers if header not in known]
        missing = [name for name in self.required_columns if name not in dataset.headers]
        problems = []
        if missing:
            problems.append(f"Missing columns: {', '.join(missing)}.")
        if unknown:
            problems.append(f"Unknown columns: {', '.join(unknown)}.")
        if problems:
            # Rows read under the wrong headers would only add confusing errors: check none of them.
            del dataset[0 : len(dataset)]
            raise FileLayoutError(" ".join(problems) + f" The columns are: {', '.join(known)}.")

    def import_instance(self, instance: Any, row: Any, **kwargs: Any) -> None:
        """Read the row into ``instance``; cells that cannot be read are errors keyed by their column."""
        try:
            super().import_instance(instance, row, **kwargs)  # type: ignore[misc]
        except ValidationError as error:
            by_attribute = {field.attribute: field.column_name for field in self.get_import_fields()}  # type: ignore[attr-defined]
            raise ValidationError(
                {by_attribute.get(key, key): messages for key, messages in error.error_dict.items()}
            ) from None

    def require_transaction(self, kwargs: Mapping[str, Any]) -> None:
        """Services write even in a preview, which is only safe when the import's transaction is rolled back."""
        if kwargs.get("dry_run") and not kwargs.get("using_transactions"):
            raise ImproperlyConfigured("Catalog imports write through services and need transactions.")


# --- Products -------------------------------------------------------------------------------------


class ProductResource(CatalogImportMixin, resources.ModelResource):
    """The product catalog as CSV, one row per product keyed by ``sku``.

    An imported row updates the product with that SKU (only the columns the file has) or creates
    it; unchanged rows are skipped. Saving goes through ``product_create`` / ``product_update``
    with the importing user as the actor; their ``ValidationFailed`` details become the row's
    errors. Passing ``user`` to ``import_data`` is required for the permission checks.
    """

    required_columns = ("sku",)

    sku = column("sku")
    name = column("name")
    hcpcs_code = column("hcpcs_code")
    rxnorm_code = column("rxnorm_code")
    rxnorm_name = column("rxnorm_name")
    strength = column("strength")
    dose_form = column("dose_form")
    therapy_type = column("therapy_type")
    coverage_tier = column("coverage_tier")
    price_cents = column("price_cents", WholeNumberWidget())
    unit = column("unit")
    dispensing_unit = column("dispensing_unit")
    dispensing_units_per_unit = column("dispensing_units_per_unit", WholeNumberWidget(allow_empty=True))
    requires_prescription = column("requires_prescription", YesNoWidget())
    is_perishable = column("is_perishable", YesNoWidget())
    requires_training = column("requires_training", YesNoWidget())
    recurring = column("recurring", YesNoWidget())
    days_of_supply = column("days_of_supply", WholeNumberWidget(allow_empty=True))
    par_level = column("par_level", WholeNumberWidget())
    reorder_point = column("reorder_point", WholeNumberWidget())
    warehouse_fulfillment = column("warehouse_fulfillment", YesNoWidget())
    dropship_fulfillment = column("dropship_fulfillment", YesNoWidget())
    vendor = column("vendor", CodeWidget(Vendor, "code", "No vendor has the code “{}”."))
    active = column("active", YesNoWidget())

    class Meta:
        model = Product
        name = "Products"
        fields = PRODUCT_COLUMNS
        import_order = PRODUCT_COLUMNS
        export_order = PRODUCT_COLUMNS
        import_id_fields = ("sku",)
        skip_unchanged = True
        use_transactions = True

    def filter_export(self, queryset: Any, **kwargs: Any) -> Any:
        return queryset.select_related("vendor").order_by("sku")

    def save_instance(self, instance: Product, is_create: bool, row: Any, **kwargs: Any) -> None:
        """Create or update the product through the catalog services instead of saving it here.

        Afterwards ``instance`` carries the stored values (its primary key included), so the
        admin's preview and log entries name the stored product.
        """
        self.require_transaction(kwargs)
        data = product_data_of(instance)
        actor = kwargs.get("user")
        try:
            if is_create:
                saved = product_create(actor=actor, data=data)
            else:
                saved = product_update(actor=actor, product=instance, data=data)
        except ValidationFailed as error:
            raise ValidationError(column_errors(error.details, PRODUCT_COLUMNS)) from None
        for field in Product._meta.concrete_fields:
            setattr(instance, field.attname, getattr(saved, field.attname))
        instance._state.adding = False


# --- Stock ----------------------------------------------------------------------------------------


class LotStockResource(resources.ModelResource):
    """Every lot with its counters, for export only (stock is imported as receipts)."""

    sku = column("sku", attribute="product__sku", readonly=True)
    warehouse = column("warehouse", attribute="warehouse__code", readonly=True)
    lot_number = column("lot_number", readonly=True)
    expiration_date = column("expiration_date", IsoDateWidget(), readonly=True)
    quantity_on_hand = column("quantity_on_hand", WholeNumberWidget(), readonly=True)
    quantity_reserved = column("quantity_reserved", WholeNumberWidget(), readonly=True)
    quantity_available = column("quantity_available", WholeNumberWidget(), readonly=True)

    class Meta:
        model = Lot
        name = "Stock (every lot)"
        fields = STOCK_COLUMNS
        export_order = STOCK_COLUMNS

    def filter_export(self, queryset: Any, **kwargs: Any) -> Any:
        return queryset.select_related("product", "warehouse").order_by("product__sku", "warehouse__code", "lot_number")


@dataclasses.dataclass
class StockReceipt:
    """One row of a receipts file; ``lot`` is the lot it went into once received."""

    product: Product | None = None
    warehouse: Warehouse | None = None
    lot_number: str = ""
    expiration_date: dt.date | None = None
    quantity: int | None = None
    lot: Lot | None = None

    @property
    def pk(self) -> Any:
        return self.lot.pk if self.lot else None

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product.sku if self.product else '?'} lot {self.lot_number}"


class StockReceiptResource(CatalogImportMixin, resources.Resource):
    """A file of receipts: ``sku, warehouse, lot_number, expiration_date, quantity``, all required
    except the date; products and warehouses must be active (as on the receive form).

    Each row is received through ``stock_receive`` with the importing user as the actor (pass
    ``user`` to ``import_data``): ``catalog.add_lot`` is needed, a lot is created on its first
    receipt, and the service refuses a quantity below one, a perishable product without an
    expiration date, a date already past, and a date that differs from the lot's. Rows are
    received in file order, so two rows may fill the same lot.
    """

    required_columns = RECEIPT_COLUMNS

    sku = column(
        "sku", CodeWidget(Product, "sku", "No active product has the SKU “{}”.", active_only=True), attribute="product"
    )
    warehouse = column(
        "warehouse", CodeWidget(Warehouse, "code", "No active warehouse has the code “{}”.", active_only=True)
    )
    lot_number = column("lot_number")
    expiration_date = column("expiration_date", IsoDateWidget())
    quantity = column("quantity", WholeNumberWidget())

    class Meta:
        import_order = RECEIPT_COLUMNS
        instance_loader_class = BaseInstanceLoader
        force_init_instance = True  # every row is a new receipt, never an edit of an earlier one
        use_transactions = True

    @classmethod
    def get_display_name(cls) -> str:
        return "Stock receipts"

    @classmethod
    def get_db_connection_name(cls) -> str:
        return router.db_for_write(Lot)

    def init_instance(self, row: Any = None) -> StockReceipt:
        return StockReceipt()

    def validate_instance(
        self,
        instance: StockReceipt,
        import_validation_errors: dict[str, Any] | None = None,
        validate_unique: bool = True,
    ) -> None:
        """Every cell is required except the expiration date (the service decides when it is needed)."""
        errors: dict[str, Any] = dict(import_validation_errors or {})
        required = {
            "sku": (instance.product, "Enter the product's SKU."),
            "warehouse": (instance.warehouse, "Enter the warehouse code."),
            "lot_number": (instance.lot_number, "Enter the lot number."),
            "quantity": (instance.quantity, "Enter the quantity."),
        }
        for name, (value, message) in required.items():
            if value in (None, "") and name not in errors:
                errors[name] = [message]
        if errors:
            raise ValidationError(errors)

    def save_instance(self, instance: StockReceipt, is_create: bool, row: Any, **kwargs: Any) -> None:
        """Receive the row's units through ``stock_receive``; its refusals become the row's errors."""
        self.require_transaction(kwargs)
        product, warehouse, quantity = instance.product, instance.warehouse, instance.quantity
        if product is None or warehouse is None or quantity is None:  # validate_instance refused it already
            raise ValidationError("The row is incomplete.")
        try:
            instance.lot = stock_receive(
                actor=kwargs.get("user"),
                product=product,
                warehouse=warehouse,
                lot_number=instance.lot_number,
                quantity=quantity,
                expiration_date=instance.expiration_date,
            )
        except ValidationFailed as error:
            raise ValidationError(column_errors(error.details, RECEIPT_COLUMNS)) from None
