"""Patients, coverage and providers in the back office.

Lists never show PHI (no names, no dates of birth): a list would decrypt every row it shows.
An object's page shows the decrypted fields and records the access; saving re-encrypts through
the model fields, with the staff user named on the history row. Patient search goes through the
blind indexes (``patients.selectors.patient_search``), never through the encrypted columns.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.exceptions import PermissionDenied
from django.db import models
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from core.admin import PHIAccessAdmin, ScopedHistoryMixin
from core.audit import access_record, with_history_user
from core.exceptions import DomainError
from core.models import AccessChannel
from territories.admin_scoping import (
    ScopedRelatedListFilter,
    TerritoryScopedAdmin,
    TerritoryScopedInline,
    admin_territories,
)
from territories.models import TerritoryMembership, TerritoryPermission

from .admin_display import patient_label
from .models import AdministrativeSex, Coverage, Patient, PriorAuthorization, Provider, ProviderCredential
from .selectors import patient_search
from .services import patient_create

PATIENT_PHI_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "sex",
    "mbi",
    "phone",
    "email",
    "address",
    "allergies",
    "medications",
    "conditions",
)
# What the engagement agent reads: consent per channel (when and how it was last recorded) and the
# time zone the patient's quiet hours are counted in.
MESSAGE_FIELDS = (("consent_email", "consent_sms"), ("consent_recorded_at", "consent_source"), "time_zone")
SEARCH_LIMIT = 50
COVERAGE_FIELDS = (
    "payer_type",
    "payer_kind",
    "payer_name",
    "plan_name",
    "member_id",
    "group_number",
    "coverage_tier",
    ("effective_from", "effective_to"),
    "active",
)


def _short_id(obj: models.Model) -> str:
    return str(obj.pk)[:8]


class _DomainErrorAsMessage:
    """Turn a service's refusal during an add into an error message on the add page.

    The admin's add view runs in a transaction, so nothing the refused service started is kept.
    """

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        try:
            return super().add_view(request, form_url, extra_context)  # type: ignore[misc]
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.path)


class CoverageInline(TerritoryScopedInline, admin.StackedInline):
    """The patient's coverage; rows live in the patient's territory."""

    model = Coverage
    fields = COVERAGE_FIELDS
    extra = 0
    can_delete = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PatientSearchForm(forms.Form):
    """A patient search, posted so that names and dates of birth never appear in a URL."""

    query = forms.CharField(
        label="Name or date of birth",
        max_length=200,
        help_text='Full name ("First Last" or "Last, First"), one name, or date of birth (YYYY-MM-DD).',
    )


@admin.register(Patient)
class PatientAdmin(_DomainErrorAsMessage, ScopedHistoryMixin, PHIAccessAdmin, TerritoryScopedAdmin, SimpleHistoryAdmin):
    """Patients of the territories where the user reads PHI in a back-office role.

    There is no search box on the list (its ``?q=`` would put names in URLs, in the redirect's
    ``_changelist_filters`` and in every link of the page): "Find a patient" posts the search and
    shows the matches on the page.
    """

    territory_permission = TerritoryPermission.VIEW_PHI
    change_list_template = "admin/patients/patient/change_list.html"
    list_display = ("short_id", "territory", "provider", "created_at")
    list_display_links = ("short_id",)
    list_filter = (("territory", ScopedRelatedListFilter), ("provider", ScopedRelatedListFilter))
    list_select_related = ("territory", "provider")
    search_fields = ()  # no GET search (and no autocomplete, which searches by GET): see search_view
    date_hierarchy = "created_at"

    @admin.display(description="patient", ordering="id")
    def short_id(self, obj: Patient) -> str:
        return f"Patient {_short_id(obj)}"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if SEARCH_VAR in request.GET:
            # A search typed into the URL is not run, and the redirect drops it from the address.
            kept = request.GET.copy()
            del kept[SEARCH_VAR]
            return HttpResponseRedirect(f"{request.path}?{kept.urlencode()}" if kept else request.path)
        return super().changelist_view(request, extra_context)

    def get_preserved_filters(self, request: HttpRequest) -> str:
        """The list's filters carried to the object's page, never a search term."""
        preserved = QueryDict(super().get_preserved_filters(request))
        filters = QueryDict(preserved.get("_changelist_filters", ""), mutable=True)
        filters.pop(SEARCH_VAR, None)
        return urlencode({"_changelist_filters": filters.urlencode()}) if filters else ""

    def get_urls(self) -> list[URLPattern]:
        return [
            path("search/", self.admin_site.admin_view(self.search_view), name="patients_patient_search"),
            *super().get_urls(),
        ]

    def search_view(self, request: HttpRequest) -> HttpResponse:
        """Find patients by name or date of birth through the blind indexes (POST only; results on the page).

        Matches are the user's own patients (this admin's queryset); showing their names is a PHI
        read, recorded for each patient shown. At most ``SEARCH_LIMIT`` are shown.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PatientSearchForm(request.POST if request.method == "POST" else None)
        results: list[Patient] | None = None
        more = False
        if form.is_bound and form.is_valid():
            matches = patient_search(user=request.user, query=form.cleaned_data["query"])
            found = list(
                self.get_queryset(request)
                .filter(pk__in=matches.values("pk"))
                .select_related("provider", "territory")
                .order_by("-created_at")[: SEARCH_LIMIT + 1]
            )
            more = len(found) > SEARCH_LIMIT
            results = found[:SEARCH_LIMIT]
            if results:
                access_record(user=request.user, objects=results, channel=AccessChannel.ADMIN)
        context = {
            **self.admin_site.each_context(request),
            "title": "Find a patient",
            "opts": self.opts,
            "form": form,
            "results": results,
            "more": more,
            "limit": SEARCH_LIMIT,
        }
        return TemplateResponse(request, "admin/patients/patient/search.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The page shows (and records) the patient's PHI anyway: name them in the heading.
        patient = self.get_object(request, unquote(object_id))
        subtitle = {"subtitle": patient_label(patient, phi_visible=True)} if patient is not None else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **subtitle})

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "sex":
            # The encrypted column has no choices of its own: offer the AdministrativeSex values.
            return forms.TypedChoiceField(
                label="Administrative sex",
                choices=[("", "Not recorded"), *AdministrativeSex.choices],
                required=False,
                empty_value=None,
                help_text=db_field.help_text,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ((None, {"fields": ("provider", *PATIENT_PHI_FIELDS)}),)
        return (
            (None, {"fields": ("territory", "provider")}),
            ("Protected health information", {"fields": PATIENT_PHI_FIELDS}),
            ("Messages", {"fields": MESSAGE_FIELDS}),
            (None, {"fields": (("created_at", "updated_at"),)}),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The territory follows the provider and is bound into the ciphertext: set at registration only.
        if obj is None:
            return ()
        return ("territory", "provider", "consent_recorded_at", "consent_source", "created_at", "updated_at")

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return (CoverageInline,) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def phi_objects(self, request: HttpRequest, obj: Patient) -> list[models.Model]:
        shown: list[models.Model] = [obj]
        if request.user.has_perm("patients.view_coverage") or request.user.has_perm("patients.change_coverage"):
            shown.extend(obj.coverages.all())
        return shown

    def save_model(self, request: HttpRequest, obj: Patient, form: ModelForm[Patient], change: bool) -> None:
        if change:
            if {"consent_email", "consent_sms"} & set(form.changed_data):
                obj.consent_recorded_at, obj.consent_source = timezone.now(), "staff (back office)"
            super().save_model(request, obj, form, change)
            return
        created = patient_create(
            actor=request.user,
            provider_id=obj.provider_id,
            first_name=obj.first_name or "",
            last_name=obj.last_name or "",
            date_of_birth=obj.date_of_birth,  # type: ignore[arg-type]
            sex=obj.sex,
            mbi=obj.mbi,
            phone=obj.phone,
            email=obj.email,
            address=obj.address,
            allergies=obj.allergies,
            medications=obj.medications,
            conditions=obj.conditions,
        )
        # The admin goes on with the form's instance (log entry, redirect): make it the saved row.
        obj.pk = created.pk
        obj.territory_id = created.territory_id
        obj.created_at = created.created_at
        obj.updated_at = created.updated_at
        obj._state.adding = False
        obj._state.db = created._state.db

    def save_formset(
        self, request: HttpRequest, form: Any, formset: BaseInlineFormSet[Any, Any, Any], change: bool
    ) -> None:
        patient = form.instance
        for coverage in formset.save(commit=False):
            coverage.territory_id = patient.territory_id
            with_history_user(coverage, request.user)
            coverage.save()
        formset.save_m2m()


@admin.register(Coverage)
class CoverageAdmin(
    _DomainErrorAsMessage, ScopedHistoryMixin, PHIAccessAdmin, TerritoryScopedAdmin, SimpleHistoryAdmin
):
    territory_permission = TerritoryPermission.VIEW_PHI
    list_display = (
        "short_id",
        "patient",
        "payer_type",
        "payer_kind",
        "coverage_tier",
        "active",
        "effective_from",
        "effective_to",
    )
    list_filter = ("payer_type", "payer_kind", "active", ("territory", ScopedRelatedListFilter))
    list_select_related = ("patient",)
    search_fields = ("=id", "=patient__id")
    raw_id_fields = ("patient",)

    @admin.display(description="coverage", ordering="id")
    def short_id(self, obj: Coverage) -> str:
        return f"Coverage {_short_id(obj)}"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("patient", *COVERAGE_FIELDS) if obj is None else ("patient_name", "territory", *COVERAGE_FIELDS)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else ("patient_name", "territory")

    @admin.display(description="patient")
    def patient_name(self, obj: Coverage) -> str:
        # Only readers of the territory's PHI reach this page (territory_permission).
        return patient_label(obj.patient, phi_visible=True)

    def phi_objects(self, request: HttpRequest, obj: Coverage) -> list[models.Model]:
        return [obj, obj.patient]  # the page names the patient

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Coverage, form: ModelForm[Coverage], change: bool) -> None:
        if not change:
            obj.territory_id = obj.patient.territory_id  # coverage lives (and is encrypted) in the patient's territory
        super().save_model(request, obj, form, change)


class ProviderCredentialInline(TerritoryScopedInline, admin.TabularInline):
    """Licences and enrolments: the compliance checks hold orders from providers without one in the territory."""

    model = ProviderCredential
    fields = ("territory", "kind", "number", "valid_from", "valid_to", "active")
    extra = 0
    can_delete = False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "territory" and not request.user.is_superuser:
            kwargs["queryset"] = admin_territories(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(PriorAuthorization)
class PriorAuthorizationAdmin(
    _DomainErrorAsMessage, ScopedHistoryMixin, PHIAccessAdmin, TerritoryScopedAdmin, SimpleHistoryAdmin
):
    """Prior authorization decisions on file; the compliance checks read them for listed items."""

    territory_permission = TerritoryPermission.VIEW_PHI

    list_display = ("short_id", "patient", "hcpcs_code", "decision", "decision_date", "expires_on")
    list_filter = ("decision", ("territory", ScopedRelatedListFilter))
    list_select_related = ("patient",)
    search_fields = ("=id", "=patient__id", "hcpcs_code")
    raw_id_fields = ("patient",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        patient = "patient" if obj is None else "patient_name"
        return (patient, "hcpcs_code", "decision", "decision_date", "expires_on", "tracking_number")

    @admin.display(description="patient")
    def patient_name(self, obj: PriorAuthorization) -> str:
        # Only readers of the territory's PHI reach this page (territory_permission).
        return patient_label(obj.patient, phi_visible=True)

    def phi_objects(self, request: HttpRequest, obj: PriorAuthorization) -> list[models.Model]:
        return [obj, obj.patient]  # the page names the patient

    @admin.display(description="prior authorization", ordering="id")
    def short_id(self, obj: PriorAuthorization) -> str:
        return f"PA {_short_id(obj)}"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else ("patient_name",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: PriorAuthorization, form: ModelForm[PriorAuthorization], change: bool
    ) -> None:
        if not change:
            obj.territory_id = obj.patient.territory_id  # encrypted in the patient's territory
        with_history_user(obj, request.user)
        super().save_model(request, obj, form, change)


@admin.register(Provider)
class ProviderAdmin(TerritoryScopedAdmin):
    inlines = (ProviderCredentialInline,)
    list_display = ("name", "npi", "credentials", "territory", "active", "created_at")
    list_filter = (("territory", ScopedRelatedListFilter), "active")
    list_select_related = ("territory",)
    search_fields = ("name", "=npi")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("territory", "name", "npi", "credentials", "user", "active")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Patients are assigned to the provider's territory; moving a provider would strand them.
        return () if obj is None else ("territory",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user" and not request.user.is_superuser:
            colleagues = TerritoryMembership.objects.filter(territory__in=admin_territories(request)).values("user")
            kwargs["queryset"] = db_field.related_model._default_manager.filter(pk__in=colleagues)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
