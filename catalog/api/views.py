"""Catalog endpoints: input serializer → selector or service → output serializer.

Any authenticated user reads the catalog (it is shared by every territory and holds no PHI).
Writes need Django model permissions, which admins hold through their territory role:
``catalog.add_product`` (POST products), ``catalog.change_product`` (PUT products) and
``catalog.add_lot`` (POST lots). The check runs before the body is read, so a user without the
permission gets 403 whatever they send; the services check it again for their other callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import selectors, services
from catalog.models import Product
from core.api.pagination import StandardPagination
from core.api.schema import EnvelopeAutoSchema
from core.exceptions import PermissionDenied

from .serializers import (
    LotReceiveSerializer,
    LotSerializer,
    ProductFilterSerializer,
    ProductGroupsSerializer,
    ProductSerializer,
    ProductWriteSerializer,
)


class CatalogWritePermission(BasePermission):
    """Reads are open to authenticated users; a write needs the view's ``write_permissions[method]``."""

    message = "You do not have permission to change the catalog."

    def has_permission(self, request: Request, view: Any) -> bool:
        required = getattr(view, "write_permissions", {}).get(request.method)
        return required is None or bool(request.user.has_perm(required))


class CatalogAutoSchema(EnvelopeAutoSchema):
    """The catalog's error responses: no territories or patients, so no TERRITORY_MISMATCH or 422;
    reads are never forbidden; a SKU in the path may name no product."""

    def _error_responses(self) -> dict[str, str]:
        errors = super()._error_responses()
        errors.pop("422", None)
        if self.method == "GET":
            errors.pop("403", None)
        elif "403" in errors:
            errors["403"] = "PERMISSION_DENIED: the user lacks the catalog permission this write needs."
        if "{sku}" in self.path:
            errors["404"] = "NOT_FOUND: no such product (inactive products are unknown to all but catalog admins)."
        return errors


class CatalogView(APIView):
    permission_classes = [IsAuthenticated, CatalogWritePermission]
    schema = CatalogAutoSchema()
    write_permissions: dict[str, str] = {}


def _products_data(products: Sequence[Product]) -> Any:
    """Products as the API shows them, with their available quantities (one query for all)."""
    available = selectors.available_quantities(product_ids=[product.pk for product in products])
    return ProductSerializer(products, many=True, context={"available": available}).data


def _product_data(product: Product) -> Any:
    return _products_data([product])[0]


def _product_input(request: Request) -> services.ProductData:
    body = ProductWriteSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    fields = dict(body.validated_data)
    return services.ProductData(**{**fields, "fulfillment_modes": tuple(fields["fulfillment_modes"])})


def _product_filters(request: Request) -> selectors.ProductFilters:
    names = ProductFilterSerializer().fields.keys()
    given = {name: value for name in names if (value := request.query_params.get(name, "").strip())}
    query = ProductFilterSerializer(data=given)
    query.is_valid(raise_exception=True)
    wanted = query.validated_data
    return selectors.ProductFilters(
        therapy_type=wanted.get("therapy_type"),
        coverage_tier=wanted.get("coverage_tier"),
        search=wanted.get("search"),
        available=None if "available" not in wanted else wanted["available"] == "true",
        active=wanted.get("active", "true") == "true",
    )


class ProductListCreateView(GenericAPIView, CatalogView):
    """``GET`` lists products (paginated, filtered); ``POST`` adds one.

    The list holds active products. Catalog admins (``catalog.change_product``) may pass
    ``active=false`` to list the inactive ones instead (``active=true`` is the default); for
    everyone else ``active`` is ignored.
    """

    serializer_class = ProductSerializer
    # Page numbers: the catalog's size does not grow with the business (orders and patients page by key).
    pagination_class = StandardPagination
    write_permissions = {"POST": services.PRODUCT_ADD_PERMISSION}

    @extend_schema(
        description=(
            "Products ordered by therapy type, name and SKU, with their available quantity. Active products "
            "only; catalog admins may pass active=false for the inactive ones."
        ),
        parameters=[ProductFilterSerializer],
        responses={200: ProductSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        products = selectors.product_list(user=request.user, filters=_product_filters(request))
        page = self.paginate_queryset(products)
        return self.get_paginated_response(_products_data(page or []))

    @extend_schema(
        description="Add a product (needs catalog.add_product).",
        request=ProductWriteSerializer,
        responses={201: ProductSerializer},
    )
    def post(self, request: Request) -> Response:
        product = services.product_create(actor=request.user, data=_product_input(request))
        return Response(_product_data(product), status=status.HTTP_201_CREATED)


class ProductGroupsView(CatalogView):
    """Active products by therapy type, then coverage tier, for the ordering wizard (not paginated)."""

    @extend_schema(
        description="Active products by therapy type, then coverage tier, for the ordering wizard (not paginated).",
        responses={200: ProductGroupsSerializer},
    )
    def get(self, request: Request) -> Response:
        groups = selectors.product_groups()
        products = [product for group in groups for tier in group.coverage_tiers for product in tier.products]
        available = selectors.available_quantities(product_ids=[product.pk for product in products])
        return Response(ProductGroupsSerializer({"groups": groups}, context={"available": available}).data)


class ProductDetailView(CatalogView):
    """``GET`` reads one product by SKU; ``PUT`` replaces its fields (the SKU itself cannot change)."""

    write_permissions = {"PUT": services.PRODUCT_CHANGE_PERMISSION}

    @extend_schema(description="One product by SKU, with its available quantity.", responses={200: ProductSerializer})
    def get(self, request: Request, sku: str) -> Response:
        return Response(_product_data(selectors.product_get_for_user(user=request.user, sku=sku)))

    @extend_schema(
        description=(
            "Replace every field of a product (needs catalog.change_product); omitted optional fields take their "
            "defaults, so a body without rxnorm_name, dispensing_unit, dispensing_units_per_unit, recurring or "
            "days_of_supply clears them. The SKU cannot change."
        ),
        request=ProductWriteSerializer,
        responses={200: ProductSerializer},
    )
    def put(self, request: Request, sku: str) -> Response:
        product = selectors.product_get_for_user(user=request.user, sku=sku)
        updated = services.product_update(actor=request.user, product=product, data=_product_input(request))
        return Response(_product_data(updated))


class LotReceiveView(CatalogView):
    """``POST`` receives stock into a lot (created on its first receipt) and writes the ledger."""

    write_permissions = {"POST": services.LOT_ADD_PERMISSION}

    @extend_schema(
        description=(
            "Receive stock into a lot, created on its first receipt (needs catalog.add_lot). A lot already "
            "expired is refused; a perishable product's lot needs an expiration date."
        ),
        request=LotReceiveSerializer,
        responses={201: LotSerializer},
    )
    def post(self, request: Request) -> Response:
        body = LotReceiveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        lot = services.stock_receive(actor=request.user, **body.validated_data)
        return Response(LotSerializer(lot).data, status=status.HTTP_201_CREATED)


class ReorderLineSerializer(serializers.Serializer):
    sku = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()


class ReorderDraftSerializer(serializers.Serializer):
    """A reorder the ordering agent proposed: a draft restock purchase order waiting for a person."""

    id = serializers.UUIDField()
    number = serializers.CharField()
    status = serializers.CharField()
    vendor = serializers.CharField(source="vendor.code")
    warehouse = serializers.CharField(source="warehouse.code")
    created_at = serializers.DateTimeField()
    lines = serializers.SerializerMethodField()

    def get_lines(self, purchase_order: Any) -> list[dict[str, Any]]:
        return [
            {"sku": line.product.sku, "name": line.product.name, "quantity": line.quantity}
            for line in purchase_order.lines.all()
        ]


class PurchasingReordersView(GenericAPIView):
    """``GET``: the vendor reorders the ordering agent proposed and nobody has acted on yet (draft
    restock purchase orders of no author), newest first, paged by key. Needs the back office's
    ``catalog.view_purchaseorder`` (ops staff and admins); warehouses serve every territory."""

    serializer_class = ReorderDraftSerializer

    @extend_schema(responses={200: ReorderDraftSerializer(many=True)})
    def get(self, request: Request) -> Response:
        if not request.user.has_perm("catalog.view_purchaseorder"):
            raise PermissionDenied("Reorders are for operations staff and administrators.")
        page = self.paginate_queryset(selectors.reorder_drafts())
        return self.get_paginated_response(ReorderDraftSerializer(page, many=True).data)
