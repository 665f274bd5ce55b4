"""Territories and who works in them.

Access is granted by object permissions (django-guardian) on the Territory: each (territory,
role) pair has a group holding that role's permissions on that territory, and a membership puts
the user in it. ``TerritoryMembership`` is the record staff edit; the services keep the groups in
step with it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    DOCTOR = "doctor", "Doctor"
    OPS_STAFF = "ops_staff", "Ops staff"
    ADMIN = "admin", "Admin"
    MASTER_DISTRIBUTOR = "master_distributor", "Master distributor"


class TerritoryPermission(models.TextChoices):
    """Object permissions on a Territory (codename, description)."""

    ACCESS = "access_territory", "See the territory's orders and providers"
    VIEW_PHI = "view_phi", "Read patients' protected health information (minimum necessary)"
    CREATE_ORDER = "create_order", "Place orders in the territory"
    REVIEW_ORDER = "review_order", "Hold, release, verify and reject orders"
    FULFILL_ORDER = "fulfill_order", "Start fulfillment, ship and complete orders"
    CANCEL_ORDER = "cancel_order", "Cancel orders"
    RECORD_PAYMENT = "record_payment", "Record a payment on an order by hand"
    SEND_PAYMENT_LINK = "send_payment_link", "Issue and re-issue a cash-pay order's payment link"
    REVOKE_PAYMENT_LINK = "revoke_payment_link", "Revoke a payment link"
    REFUND_PAYMENT = "refund_payment", "Refund a patient's payment"
    MANAGE_PHARMACIES = "manage_pharmacies", "Register and configure the pharmacies serving the territory"
    MANAGE_PATIENTS = "manage_patients", "Register and edit patients"
    OVERRIDE_COMPLIANCE = "override_compliance", "Verify an order over open compliance findings (with a reason)"


_ALL = set(TerritoryPermission)
ROLE_PERMISSIONS: dict[str, set[TerritoryPermission]] = {
    Role.DOCTOR: {
        TerritoryPermission.ACCESS,
        TerritoryPermission.VIEW_PHI,
        TerritoryPermission.CREATE_ORDER,
        TerritoryPermission.CANCEL_ORDER,
        TerritoryPermission.MANAGE_PATIENTS,
        TerritoryPermission.SEND_PAYMENT_LINK,
    },
    Role.OPS_STAFF: {
        TerritoryPermission.ACCESS,
        TerritoryPermission.VIEW_PHI,
        TerritoryPermission.CREATE_ORDER,
        TerritoryPermission.REVIEW_ORDER,
        TerritoryPermission.FULFILL_ORDER,
        TerritoryPermission.CANCEL_ORDER,
        TerritoryPermission.MANAGE_PATIENTS,
        TerritoryPermission.SEND_PAYMENT_LINK,
        TerritoryPermission.REVOKE_PAYMENT_LINK,
    },
    Role.ADMIN: _ALL,
    # A distributor moves orders along (Pending -> Preparing -> Shipped) without clinical details.
    Role.MASTER_DISTRIBUTOR: {TerritoryPermission.ACCESS, TerritoryPermission.FULFILL_ORDER},
}

# Roles that work in the Django admin back office.
STAFF_ROLES = {Role.OPS_STAFF, Role.ADMIN}

# Model-level permissions the back office needs to show its pages ("app_label.codename"); which
# rows a user then sees is still limited to their territories by the selectors.
_OPS_MODEL_PERMISSIONS = [
    "orders.view_order",
    "orders.change_order",
    "orders.view_orderevent",
    "orders.view_orderitem",
    "patients.view_patient",
    "patients.change_patient",
    "patients.view_provider",
    "patients.view_coverage",
    "orders.view_fulfillmenttask",
    "orders.change_fulfillmenttask",
    "catalog.view_product",
    "catalog.view_vendor",
    "catalog.view_warehouse",
    "catalog.view_lot",
    "catalog.view_stockmovement",
    "catalog.view_purchaseorder",
    "catalog.change_purchaseorder",
    "catalog.view_purchaseorderline",
    "catalog.view_stockalert",
    "territories.view_territory",
    "orders.view_attachment",
    "orders.add_attachment",
    "compliance.view_payerrule",
    "compliance.view_compliancesnapshot",
    "patients.view_priorauthorization",
    "patients.add_priorauthorization",
    "patients.view_providercredential",
    "payments.view_invoice",
    "payments.view_invoiceline",
    "payments.view_payment",
    "payments.view_paymentlink",
    "payments.view_refund",
    "pharmacy.view_prescription",
    "pharmacy.change_prescription",
    "pharmacy.view_pharmacylog",
    "agents.view_agentrun",
    "agents.view_staffalert",
    "orders.view_shift",
    "orders.add_shift",
    "orders.change_shift",
    "orders.delete_shift",
    "orders.view_staffingplan",
    "payments.view_claim",
    "payments.view_claimline",
    "payments.view_claimcheckpoint",
    # The beat schedule (django-celery-beat): ops see and change it, and add the schedules they need.
    "django_celery_beat.view_periodictask",
    "django_celery_beat.change_periodictask",
    "django_celery_beat.view_intervalschedule",
    "django_celery_beat.add_intervalschedule",
    "django_celery_beat.view_crontabschedule",
    "django_celery_beat.add_crontabschedule",
]
ROLE_MODEL_PERMISSIONS: dict[str, list[str]] = {
    Role.DOCTOR: [],
    Role.MASTER_DISTRIBUTOR: [],
    Role.OPS_STAFF: _OPS_MODEL_PERMISSIONS,
    Role.ADMIN: [
        *_OPS_MODEL_PERMISSIONS,
        "patients.add_patient",
        "patients.add_provider",
        "patients.change_provider",
        "patients.add_coverage",
        "patients.change_coverage",
        "catalog.add_product",
        "catalog.change_product",
        "catalog.add_vendor",
        "catalog.change_vendor",
        "catalog.add_warehouse",
        "catalog.change_warehouse",
        "catalog.add_lot",
        "catalog.change_lot",
        "catalog.add_purchaseorder",
        "catalog.add_purchaseorderline",
        "catalog.change_purchaseorderline",
        "catalog.delete_purchaseorderline",
        "compliance.add_payerrule",
        "compliance.change_payerrule",
        "patients.change_priorauthorization",
        "patients.add_providercredential",
        "patients.change_providercredential",
        "territories.view_territorymembership",
        "territories.add_territorymembership",
        "territories.change_territorymembership",
        "territories.delete_territorymembership",
        "core.view_outboxevent",
        "core.change_outboxevent",
        "core.view_accessrecord",
        "pharmacy.view_pharmacy",
        "pharmacy.add_pharmacy",
        "pharmacy.change_pharmacy",
    ],
}


class Territory(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=50, unique=True, help_text="Short name, e.g. 'north'.")
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "territories"
        permissions = [(p.value, p.label) for p in TerritoryPermission]

    def __str__(self) -> str:
        return self.name


class TerritoryMembership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    territory = models.ForeignKey(Territory, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=30, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "territory"], name="one_role_per_territory")]
        ordering = ["territory__code", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} in {self.territory}"
