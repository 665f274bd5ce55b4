"""Pharmacies, prescriptions and the pharmacy log in the back office.

Pharmacies are saved through the services (credentials are write-only: a blank field keeps them;
they show masked). Dead-lettered prescriptions are resent from their list. Log payloads are PHI:
shown on a log's own page only, and each view is recorded.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin import PHIAccessAdmin, ReadOnlyAdmin
from core.exceptions import DomainError
from territories.admin_scoping import TerritoryListFilter, TerritoryScopedAdmin, admin_territories
from territories.models import TerritoryPermission
from territories.selectors import territory_permits

from . import services
from .destinations import destination_problem
from .models import Pharmacy, PharmacyLog, Prescription, TransmissionStatus
from .selectors import refill_due_at


class PharmacyForm(forms.ModelForm):
    base_url = forms.URLField(
        assume_scheme="https", help_text="The pharmacy's API base, e.g. https://pharmacy.example/fhir."
    )
    credentials_json = forms.CharField(
        label="Credentials",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text='JSON, e.g. {"bearer_token": "..."}. Leave blank to keep the current credentials.',
    )

    actor: Any = None  # the signed-in user, set by the admin

    class Meta:
        model = Pharmacy
        fields = ("name", "connector", "base_url", "mapping", "active", "territories")

    def clean_base_url(self) -> str:
        """https:// to a public address only (the services check again; this shows it on the field)."""
        base_url = str(self.cleaned_data["base_url"])
        problem = destination_problem(base_url, unresolved_allowed=True)
        if problem is not None:
            raise forms.ValidationError(problem)
        return base_url

    def clean_territories(self) -> Any:
        territories = self.cleaned_data["territories"]
        current = list(self.instance.territories.all()) if self.instance.pk and not self.instance._state.adding else []
        for territory in {*territories, *current}:
            if not territory_permits(
                user=self.actor, permission=TerritoryPermission.MANAGE_PHARMACIES, territory_id=territory.pk
            ):
                raise forms.ValidationError(f"You may not manage pharmacies for {territory}.")
        return territories

    def clean_credentials_json(self) -> dict[str, str] | None:
        raw = self.cleaned_data.get("credentials_json") or ""
        if not raw.strip():
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("Not valid JSON.") from None
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise forms.ValidationError("Give an object of text values.")
        return value


@admin.register(Pharmacy)
class PharmacyAdmin(admin.ModelAdmin):
    form = PharmacyForm
    list_display = ("name", "connector", "base_url", "active")
    list_filter = ("connector", "active")
    search_fields = ("name",)
    readonly_fields = ("credentials_masked",)
    actions = ("rotate_callback_token",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Pharmacy]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(territories__in=admin_territories(request).values("pk")).distinct()

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "territories" and not request.user.is_superuser:
            kwargs["queryset"] = admin_territories(request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="Current credentials")
    def credentials_masked(self, obj: Pharmacy) -> str:
        hint = services.credentials_hint(obj)
        return ", ".join(f"{key}: {value}" for key, value in hint.items()) or "None"

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})

    def save_model(self, request: HttpRequest, obj: Pharmacy, form: Any, change: bool) -> None:
        """Save through the services (the form has checked the territories against the user's permission)."""
        data = form.cleaned_data
        fields = {name: data[name] for name in ("name", "connector", "base_url", "mapping", "active")}
        territory_ids = [territory.pk for territory in data["territories"]]
        if change:
            services.pharmacy_update(
                actor=request.user,
                pharmacy=obj,
                fields=fields,
                credentials=data["credentials_json"],
                territory_ids=territory_ids,
            )
            return
        pharmacy, token = services.pharmacy_create(
            actor=request.user, credentials=data["credentials_json"] or {}, territory_ids=territory_ids, **fields
        )
        obj.pk, obj._state.adding = pharmacy.pk, False
        self.message_user(
            request,
            f"Callback token for {pharmacy.name} (shown once; give it to the pharmacy): {token}",
            messages.WARNING,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The territories were saved with the pharmacy by the service."""

    @admin.action(description="Issue a new callback token")
    def rotate_callback_token(self, request: HttpRequest, queryset: QuerySet[Pharmacy]) -> None:
        for pharmacy in queryset:
            try:
                token = services.callback_token_rotate(actor=request.user, pharmacy=pharmacy)
            except DomainError as error:
                self.message_user(request, f"{pharmacy.name}: {error.message}", messages.ERROR)
            else:
                self.message_user(
                    request, f"New callback token for {pharmacy.name} (shown once): {token}", messages.WARNING
                )


@admin.register(Prescription)
class PrescriptionAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
    list_display = ("identifier", "order", "pharmacy", "fill", "status", "attempts", "last_error", "dispense_status")
    list_filter = ("status", "dispense_status", "pharmacy", ("territory", TerritoryListFilter))
    list_select_related = ("order", "pharmacy")
    search_fields = ("order__reference", "=identifier")
    readonly_fields = (
        "identifier",
        "order",
        "pharmacy",
        "fill",
        "status",
        "attempts",
        "last_error",
        "pharmacy_reference",
        "sent_at",
        "dispense_status",
        "dispensed_at",
        "refill_due",
        "carrier",
        "tracking_number",
    )
    exclude = ("item", "territory")

    @admin.display(description="Next fill due")
    def refill_due(self, prescription: Prescription) -> Any:
        """When the resupply run sends the next fill (if refills remain); blank without a days supply."""
        if prescription.fill >= prescription.item.refills:
            return "No refills left"
        return refill_due_at(prescription) or "-"

    actions = ("retry_sending",)

    @admin.action(description="Send again (dead-lettered or refused prescriptions)")
    def retry_sending(self, request: HttpRequest, queryset: QuerySet[Prescription]) -> None:
        resent = []
        retryable = (TransmissionStatus.DEAD_LETTER, TransmissionStatus.REJECTED)
        for prescription in queryset.filter(status__in=retryable):
            try:
                services.prescription_retry(prescription_id=prescription.pk, actor=request.user)
            except DomainError as error:
                self.message_user(request, f"{prescription.identifier}: {error.message}", messages.ERROR)
            else:
                resent.append(prescription.identifier)
        if resent:
            self.message_user(request, f"Sending again: {', '.join(resent)}.", messages.SUCCESS)


@admin.register(PharmacyLog)
class PharmacyLogAdmin(PHIAccessAdmin, ReadOnlyAdmin, TerritoryScopedAdmin):
    """Every exchange; payloads (PHI) only on a log's own page, which records the read."""

    list_display = ("created_at", "order", "pharmacy", "direction", "outcome", "response_status", "duration_ms")
    list_filter = ("outcome", "direction", "pharmacy", ("territory", TerritoryListFilter))
    list_select_related = ("order", "pharmacy")
    search_fields = ("order__reference",)
    readonly_fields = (
        "created_at",
        "order",
        "pharmacy",
        "prescription",
        "direction",
        "method",
        "url",
        "response_status",
        "duration_ms",
        "outcome",
        "request_payload",
        "response_payload",
    )
    exclude = ("territory",)
