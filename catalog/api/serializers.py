"""Catalog API bodies: products as they read and write, stock receipts, the ordering wizard's groups."""

from __future__ import annotations

from rest_framework import serializers

from catalog.models import DispensingUnit, Product, TherapyType, Vendor, Warehouse
from catalog.services import FULFILLMENT_MODES

# Path segments under catalog/products/ that are not SKUs.
RESERVED_SKUS = {"grouped"}
# The database's ranges: PostgreSQL integer and smallint.
INTEGER_MAX = 2_147_483_647
SMALLINT_MAX = 32_767


class ProductFilterSerializer(serializers.Serializer):
    """The list's query parameters; blank ones count as absent."""

    therapy_type = serializers.ChoiceField(choices=TherapyType.choices, required=False)
    coverage_tier = serializers.CharField(max_length=50, required=False)
    search = serializers.CharField(
        max_length=100, required=False, help_text="Part of the SKU, name, HCPCS or RxNorm code, any case."
    )
    available = serializers.ChoiceField(
        choices=["true", "false"], required=False, help_text="true: available_quantity above 0; false: none available."
    )
    active = serializers.ChoiceField(
        choices=["true", "false"],
        required=False,
        help_text="Catalog admins only (default true); everyone else always gets active products.",
    )


class ProductWriteSerializer(serializers.Serializer):
    """A product as POST and PUT take it; omitted optional fields take their defaults (PUT replaces all).

    The medication fields (``rxnorm_name``, ``dispensing_unit``, ``dispensing_units_per_unit``) need
    an ``rxnorm_code``, and the dispensing unit and its count go together; ``days_of_supply`` needs
    ``recurring``. ``catalog.services.product_rule_errors`` checks these for every caller.
    """

    sku = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=64,
        error_messages={"invalid": "Use letters, digits, dots, dashes and underscores."},
    )
    name = serializers.CharField(max_length=200)
    hcpcs_code = serializers.CharField(max_length=5, required=False, allow_blank=True, default="")
    rxnorm_code = serializers.CharField(max_length=12, required=False, allow_blank=True, default="")
    rxnorm_name = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        help_text="Medications only: the RxNorm name of the RxNorm code, e.g. sildenafil 20 MG Oral Tablet.",
    )
    strength = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    dose_form = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    therapy_type = serializers.ChoiceField(choices=TherapyType.choices)
    coverage_tier = serializers.CharField(max_length=50, required=False, allow_blank=True, default="")
    price_cents = serializers.IntegerField(min_value=0, max_value=INTEGER_MAX)
    unit = serializers.CharField(max_length=30, required=False, default="each")
    dispensing_unit = serializers.ChoiceField(
        choices=DispensingUnit.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="Medications only: what the pharmacy counts (the prescription's dispense quantity is in it).",
    )
    dispensing_units_per_unit = serializers.IntegerField(
        min_value=1,
        max_value=INTEGER_MAX,
        required=False,
        allow_null=True,
        default=None,
        help_text="Medications only, with dispensing_unit: dispensing units in one unit sold (30 for a bottle of 30).",
    )
    requires_prescription = serializers.BooleanField(required=False, default=True)
    is_perishable = serializers.BooleanField(required=False, default=False)
    requires_training = serializers.BooleanField(required=False, default=False)
    recurring = serializers.BooleanField(
        required=False, default=False, help_text="Supplied on a recurring basis: a repeat delivery is a refill."
    )
    days_of_supply = serializers.IntegerField(
        min_value=1,
        max_value=SMALLINT_MAX,
        required=False,
        allow_null=True,
        default=None,
        help_text="Recurring supplies only: the days one unit usually lasts; null when not known.",
    )
    par_level = serializers.IntegerField(min_value=0, max_value=INTEGER_MAX, required=False, default=0)
    reorder_point = serializers.IntegerField(min_value=0, max_value=INTEGER_MAX, required=False, default=0)
    fulfillment_modes = serializers.ListField(
        child=serializers.ChoiceField(choices=FULFILLMENT_MODES),
        allow_empty=False,
        max_length=len(FULFILLMENT_MODES),
        required=False,
        default=["warehouse"],
    )
    vendor = serializers.SlugRelatedField(
        slug_field="code", queryset=Vendor.objects.all(), allow_null=True, required=False, default=None
    )
    active = serializers.BooleanField(required=False, default=True)

    def validate_sku(self, value: str) -> str:
        if value in RESERVED_SKUS:
            raise serializers.ValidationError("This SKU is reserved by the API.")
        return value


class ProductSerializer(serializers.Serializer):
    """A product as the API shows it; ``available_quantity`` comes from ``context["available"]``
    (product id → units, see ``catalog.selectors.available_quantities``)."""

    sku = serializers.CharField()
    name = serializers.CharField()
    hcpcs_code = serializers.CharField()
    rxnorm_code = serializers.CharField()
    rxnorm_name = serializers.CharField()
    strength = serializers.CharField()
    dose_form = serializers.CharField()
    therapy_type = serializers.ChoiceField(choices=TherapyType.choices)
    coverage_tier = serializers.CharField()
    price_cents = serializers.IntegerField()
    unit = serializers.CharField()
    dispensing_unit = serializers.ChoiceField(choices=DispensingUnit.choices, allow_blank=True)
    dispensing_units_per_unit = serializers.IntegerField(allow_null=True)
    requires_prescription = serializers.BooleanField()
    is_perishable = serializers.BooleanField()
    requires_training = serializers.BooleanField()
    recurring = serializers.BooleanField()
    days_of_supply = serializers.IntegerField(allow_null=True)
    par_level = serializers.IntegerField()
    reorder_point = serializers.IntegerField()
    fulfillment_modes = serializers.ListField(child=serializers.ChoiceField(choices=FULFILLMENT_MODES))
    vendor = serializers.CharField(source="vendor.code", allow_null=True, help_text="The vendor's code.")
    active = serializers.BooleanField()
    available_quantity = serializers.SerializerMethodField()

    def get_available_quantity(self, product: Product) -> int:
        return int(self.context["available"][product.pk])


class CoverageTierGroupSerializer(serializers.Serializer):
    coverage_tier = serializers.CharField()
    products = ProductSerializer(many=True)


class TherapyGroupSerializer(serializers.Serializer):
    therapy_type = serializers.ChoiceField(choices=TherapyType.choices)
    label = serializers.CharField()  # type: ignore[assignment]
    coverage_tiers = CoverageTierGroupSerializer(many=True)


class ProductGroupsSerializer(serializers.Serializer):
    groups = TherapyGroupSerializer(many=True)


class LotReceiveSerializer(serializers.Serializer):
    """Stock arriving at a warehouse: a new lot, or more units of one already there."""

    sku = serializers.SlugRelatedField(slug_field="sku", queryset=Product.objects.all(), source="product")
    lot_number = serializers.CharField(max_length=64)
    expiration_date = serializers.DateField(required=False, allow_null=True, default=None)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)
    warehouse = serializers.SlugRelatedField(slug_field="code", queryset=Warehouse.objects.filter(active=True))


class LotSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    sku = serializers.CharField(source="product.sku")
    lot_number = serializers.CharField()
    expiration_date = serializers.DateField(allow_null=True)
    warehouse = serializers.CharField(source="warehouse.code")
    quantity_on_hand = serializers.IntegerField()
    quantity_reserved = serializers.IntegerField()
    quantity_available = serializers.IntegerField()
