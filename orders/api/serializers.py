from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.fields import StrictUUIDField
from core.identifiers import is_valid_icd10
from orders.models import (
    MAX_DAYS_SUPPLY,
    MAX_DIAGNOSIS_CODES,
    MAX_REFILLS,
    DeliveryMode,
    DeliveryWindow,
    Disposition,
    DosePeriodUnit,
    FulfillmentTask,
    OrderEvent,
    OrderItem,
    OrderStatus,
    Priority,
    Source,
    Stage,
    StockStatus,
    TaskKind,
    TaskStatus,
)
from patients.api.serializers import AddressSerializer
from patients.models import PayerType


class ItemInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=9999)
    dosage_text = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", help_text="Medications: the sig."
    )
    dose_frequency = serializers.IntegerField(min_value=1, max_value=24, required=False, allow_null=True, default=None)
    dose_period = serializers.IntegerField(min_value=1, max_value=365, required=False, allow_null=True, default=None)
    dose_period_unit = serializers.ChoiceField(
        choices=DosePeriodUnit.choices, required=False, allow_blank=True, default=""
    )
    refills = serializers.IntegerField(min_value=0, max_value=MAX_REFILLS, required=False, default=0)
    days_supply = serializers.IntegerField(
        min_value=1,
        max_value=MAX_DAYS_SUPPLY,
        required=False,
        allow_null=True,
        default=None,
        help_text="Medications: days one fill lasts; refills are sent when it runs low.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        timing = (attrs.get("dose_frequency"), attrs.get("dose_period"), attrs.get("dose_period_unit") or None)
        if any(part is not None for part in timing) and any(part is None for part in timing):
            raise serializers.ValidationError(
                {"dose_frequency": ["Give dose_frequency, dose_period and dose_period_unit together."]}
            )
        return attrs


class InsuranceSerializer(serializers.Serializer):
    carrier = serializers.CharField(max_length=200, required=False, allow_blank=True)
    policy_number = serializers.CharField(max_length=64, required=False, allow_blank=True)
    group_number = serializers.CharField(max_length=64, required=False, allow_blank=True)


class OrderCreateSerializer(serializers.Serializer):
    """Seed 002's body plus items, delivery mode, priority and payer type."""

    patient_id = StrictUUIDField()
    provider_id = StrictUUIDField()
    items = serializers.ListField(child=ItemInputSerializer(), allow_empty=False, max_length=100)
    payer_type = serializers.ChoiceField(choices=PayerType.choices)
    delivery_mode = serializers.ChoiceField(choices=DeliveryMode.choices, default=DeliveryMode.SHIP_TO_PATIENT)
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.ROUTINE)
    source = serializers.ChoiceField(choices=Source.choices, default=Source.API)  # type: ignore[assignment]
    requested_date = serializers.DateField(required=False, allow_null=True)
    delivery_window = serializers.ChoiceField(choices=DeliveryWindow.choices, default=DeliveryWindow.ANY)
    delivery_address = AddressSerializer(
        required=False, allow_null=True, help_text="Where to deliver, when not the patient's address on file."
    )
    service_type = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    diagnosis_codes = serializers.ListField(
        child=serializers.CharField(max_length=10), required=False, default=list, max_length=MAX_DIAGNOSIS_CODES
    )
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True, allow_null=True)
    insurance = InsuranceSerializer(required=False, allow_null=True)
    order_date = serializers.DateField(required=False, allow_null=True, help_text="The written order's date (today).")
    f2f_date = serializers.DateField(
        required=False, allow_null=True, help_text="Date of the face-to-face encounter for this order."
    )
    sign = serializers.BooleanField(
        required=False, default=False, help_text="The ordering practitioner signs the written order electronically."
    )

    def validate_items(self, items: list[dict]) -> list[dict]:
        skus = [item["sku"] for item in items]
        if len(set(skus)) != len(skus):
            raise serializers.ValidationError("List each SKU once, with its total quantity.")
        return items

    def validate_diagnosis_codes(self, codes: list[str]) -> list[str]:
        return validate_icd10_list(codes)


def validate_icd10_list(codes: list[str]) -> list[str]:
    """Every code a valid ICD-10-CM code, else a ValidationError naming the bad positions."""
    bad = [str(index) for index, code in enumerate(codes) if not is_valid_icd10(code)]
    if bad:
        raise serializers.ValidationError({index: ["Enter a valid ICD-10-CM code, such as E11.9."] for index in bad})
    return codes


class OrderStatusUpdateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    verification_data = serializers.DictField(required=False, allow_null=True)


class OrderVerifySerializer(serializers.Serializer):
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    verification_data = serializers.DictField(required=False, allow_null=True)


class OrderCompleteSerializer(serializers.Serializer):
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class OrderCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=5000)


class PrescriptionDetailSerializer(serializers.Serializer):
    dosage_text = serializers.CharField()
    dose_frequency = serializers.IntegerField(allow_null=True)
    dose_period = serializers.IntegerField(allow_null=True)
    dose_period_unit = serializers.CharField()
    refills = serializers.IntegerField()
    days_supply = serializers.IntegerField(allow_null=True)


class OrderItemSerializer(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price_cents = serializers.IntegerField()
    line_total_cents = serializers.IntegerField()
    stock_status = serializers.ChoiceField(choices=StockStatus.choices)
    fulfillment_path = serializers.SerializerMethodField()
    prescription = serializers.SerializerMethodField()

    @extend_schema_field(PrescriptionDetailSerializer(allow_null=True))
    def get_prescription(self, item: OrderItem) -> dict[str, Any] | None:
        """Dosage and refills of a medication line; null without them or for users who may not read PHI."""
        if not self.context.get("with_phi") or not (
            item.dosage_text or item.refills or item.dose_frequency or item.days_supply
        ):
            return None
        return dict(PrescriptionDetailSerializer(item).data)

    def get_fulfillment_path(self, item: OrderItem) -> str | None:
        """``warehouse``, ``dropship``, ``backorder`` or ``pharmacy`` once fulfillment started; null before."""
        return item.fulfillment_path or None


class InventoryFlagSerializer(serializers.Serializer):
    sku = serializers.CharField()
    requested = serializers.IntegerField()
    available = serializers.IntegerField()


class OrderSummarySerializer(serializers.Serializer):
    """An order without its PHI: what lists show."""

    id = serializers.UUIDField()
    reference = serializers.CharField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    stage = serializers.ChoiceField(choices=Stage.choices, allow_null=True)
    ai_disposition = serializers.ChoiceField(choices=Disposition.choices, allow_null=True)
    territory_id = serializers.UUIDField()
    patient_id = serializers.UUIDField()
    provider_id = serializers.UUIDField()
    payer_type = serializers.ChoiceField(choices=PayerType.choices)
    source = serializers.ChoiceField(choices=Source.choices)  # type: ignore[assignment]
    priority = serializers.ChoiceField(choices=Priority.choices)
    delivery_mode = serializers.ChoiceField(choices=DeliveryMode.choices)
    delivery_window = serializers.ChoiceField(choices=DeliveryWindow.choices)
    requested_date = serializers.DateField(allow_null=True)
    order_date = serializers.DateField()
    signed_by_id = serializers.UUIDField(allow_null=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    items = OrderItemSerializer(many=True, source="items.all")
    inventory_flags = InventoryFlagSerializer(many=True)
    total_cents = serializers.IntegerField()
    approver_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    verified_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)


class OrderSerializer(OrderSummarySerializer):
    """An order with its PHI, for one order's detail.

    The PHI fields are null unless ``context["with_phi"]`` (default True): the same shape for
    every reader, the clinical details only for roles that may read them.
    """

    PHI_FIELDS = (
        "service_type",
        "diagnosis_codes",
        "notes",
        "insurance",
        "verification_data",
        "f2f_date",
        "delivery_address",
    )

    service_type = serializers.CharField(allow_null=True)
    diagnosis_codes = serializers.ListField(child=serializers.CharField(), allow_null=True)
    notes = serializers.CharField(allow_null=True)
    insurance = InsuranceSerializer(source="insurance_details", allow_null=True)
    verification_data = serializers.DictField(allow_null=True)
    f2f_date = serializers.DateField(allow_null=True)
    delivery_address = serializers.DictField(allow_null=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        if not self.context.get("with_phi", True):
            # Leave the encrypted fields sealed: build the representation without reading them.
            data = OrderSummarySerializer(instance, context=self.context).data
            return {**data, **dict.fromkeys(self.PHI_FIELDS)}
        return super().to_representation(instance)


class OrderEventSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    sequence = serializers.IntegerField()
    kind = serializers.CharField()
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    transition = serializers.CharField()
    actor_id = serializers.UUIDField(allow_null=True)
    actor_name = serializers.SerializerMethodField()
    actor_kind = serializers.CharField()
    reason = serializers.CharField(allow_null=True)
    payload = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: OrderEvent) -> dict[str, Any]:
        """Reasons and payloads may be clinical: shown only with ``context["with_phi"]`` (default True)."""
        data = super().to_representation(instance)
        if not self.context.get("with_phi", True):
            data["reason"] = None
            data["payload"] = None
        return data

    def get_actor_name(self, event: OrderEvent) -> str | None:
        return event.actor.display_name if event.actor is not None else None


class FulfillmentTaskSerializer(serializers.Serializer):
    """One unit of fulfillment work (no PHI: SKUs, dates, carriers and tracking numbers)."""

    id = serializers.UUIDField()
    order_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=TaskKind.choices)
    status = serializers.ChoiceField(choices=TaskStatus.choices)
    skus = serializers.SerializerMethodField()
    due_date = serializers.DateField()
    effort_minutes = serializers.IntegerField()
    assignee_id = serializers.UUIDField(allow_null=True)
    warehouse = serializers.SerializerMethodField()
    purchase_order = serializers.SerializerMethodField()
    carrier = serializers.CharField()
    tracking_number = serializers.CharField()
    shipped_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)

    def get_skus(self, task: FulfillmentTask) -> list[str]:
        return sorted(item.sku for item in task.items.all())

    def get_warehouse(self, task: FulfillmentTask) -> str | None:
        """The code of the warehouse a pick/pack ships from (null for a backorder or other tasks)."""
        return task.warehouse.code if task.warehouse else None

    def get_purchase_order(self, task: FulfillmentTask) -> str | None:
        """The dropship purchase order's number."""
        return task.purchase_order.number if task.purchase_order else None


class ShipmentSerializer(serializers.Serializer):
    carrier = serializers.CharField(max_length=50)
    tracking_number = serializers.CharField(max_length=100)


class TaskNoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
