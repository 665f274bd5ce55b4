"""The product catalog (stock, lots and vendors arrive with the catalog issue)."""

from __future__ import annotations

import uuid

from django.db import models

from core.identifiers import validate_hcpcs


class TherapyType(models.TextChoices):
    CPAP = "cpap", "CPAP / sleep"
    DIABETES = "diabetes", "Diabetes"
    WOUND_CARE = "wound_care", "Wound care"
    MOBILITY = "mobility", "Mobility"
    RESPIRATORY = "respiratory", "Respiratory"
    OSTOMY = "ostomy", "Ostomy"
    UROLOGY = "urology", "Urology"
    WEIGHT_MANAGEMENT = "weight_management", "Weight management"
    HAIR_LOSS = "hair_loss", "Hair loss"
    ED = "ed", "Erectile dysfunction"


class Product(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(max_length=200)
    hcpcs_code = models.CharField("HCPCS code", max_length=5, blank=True, validators=[validate_hcpcs])
    therapy_type = models.CharField(max_length=30, choices=TherapyType.choices)
    price_cents = models.PositiveIntegerField(help_text="Unit price in cents.")
    unit = models.CharField(max_length=30, default="each", help_text="Unit of measure, e.g. each, box of 100.")
    requires_prescription = models.BooleanField(default=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["therapy_type", "name"]

    def __str__(self) -> str:
        return f"{self.sku} — {self.name}"
