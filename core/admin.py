"""Back-office building blocks: territory scoping and PHI access records for every admin, and the
admin pages of the outbox and of the access records themselves.

The admin is an interface like the API: what a staff user sees is limited to their territories
(superusers see everything), and every page that shows PHI writes an access record. The scoping
asks ``territories.selectors`` (the one place territory access is decided); admin modules are the
interface layer, so this is the only place ``core`` looks at territories.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.html import format_html
from django_stubs_ext import StrOrPromise

from territories.models import Territory
from territories.selectors import territories_for_user

from .audit import access_record
from .models import AccessChannel, AccessRecord, OutboxEvent, OutboxStatus
from .outbox import outbox_retry


def admin_territories(request: HttpRequest) -> QuerySet[Territory]:
    """The territories the admin user may see (every active one for a superuser)."""
    return territories_for_user(user=request.user)


def _territory_scoped_choices(model: type[models.Model], request: HttpRequest) -> QuerySet[Any] | None:
    """Choices of a foreign key to ``model`` limited to the user's territories, or None if not scoped."""
    if request.user.is_superuser:
        return None
    if issubclass(model, Territory):
        return admin_territories(request)
    try:
        field = model._meta.get_field("territory")
    except FieldDoesNotExist:  # not a territory-scoped model
        return None
    if getattr(field, "related_model", None) is not Territory:
        return None
    return model._default_manager.filter(territory__in=admin_territories(request))


class TerritoryScopedAdmin(admin.ModelAdmin):
    """Limit an admin to the rows of the user's territories; superusers see all.

    ``territory_lookup`` names the path from the model to its territory (``"territory"`` by
    default; ``"pk"`` for Territory itself, ``"territory_id"`` for a bare UUID column). Objects
    outside the user's territories are missing from the queryset, so their pages answer like
    objects that do not exist. Foreign-key choices to territory-scoped models (and to Territory)
    are limited the same way.
    """

    territory_lookup = "territory"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.territory_lookup}__in": admin_territories(request).values("pk")})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "queryset" not in kwargs:
            choices = _territory_scoped_choices(db_field.related_model, request)
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ScopedRelatedListFilter(admin.RelatedFieldListFilter):
    """A related-object filter offering only the territories (or territory-scoped objects) the user may see."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        choices = _territory_scoped_choices(field.related_model, request)
        if choices is None:
            return super().field_choices(field, request, model_admin)
        return [(str(obj.pk), str(obj)) for obj in choices]


TerritoryListFilter = ScopedRelatedListFilter


class PHIAccessAdmin(admin.ModelAdmin):
    """Record an access record for every change page (GET) and history page that shows an object's PHI.

    ``phi_objects`` says which objects a page shows (the object itself by default; override to add
    inline PHI such as a patient's coverage). Lists must not show PHI, so they record nothing.
    """

    def phi_objects(self, request: HttpRequest, obj: Any) -> list[models.Model]:
        return [obj]

    def record_phi_access(self, request: HttpRequest, object_id: str, response: HttpResponse) -> None:
        if request.method != "GET" or response.status_code != 200:
            return
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            access_record(user=request.user, objects=self.phi_objects(request, obj), channel=AccessChannel.ADMIN)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        self.record_phi_access(request, object_id, response)
        return response


class ScopedHistoryMixin:
    """Close the gaps simple-history's admin leaves for territory-scoped PHI models.

    Its history pages fall back to the history table when the object is not in the admin's
    queryset, and its version page loads versions unscoped and saves ("reverts") on POST. Here
    both answer 404 outside the user's territories, record the PHI access, and a version can be
    looked at but never written back: changes go through the forms and services.
    """

    def revert_disabled(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def _scoped_object_or_404(self, request: HttpRequest, object_id: str) -> Any:
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            raise Http404
        return obj

    def history_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None) -> Any:
        self._scoped_object_or_404(request, object_id)
        response = super().history_view(request, object_id, extra_context)  # type: ignore[misc]
        self.record_phi_access(request, object_id, response)  # type: ignore[attr-defined]
        return response

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: dict[str, Any] | None = None
    ) -> Any:
        self._scoped_object_or_404(request, object_id)
        if request.method != "GET":
            raise PermissionDenied
        response = super().history_form_view(request, object_id, version_id, extra_context)  # type: ignore[misc]
        self.record_phi_access(request, object_id, response)  # type: ignore[attr-defined]
        return response


class ReadOnlyAdmin(admin.ModelAdmin):
    """Pages to look at records that only services write."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Model level only, so that actions gated on "change" can run; no object is ever edited.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    """The outbox: events waiting, delivered and failed. Failed events can be put back in the queue.

    Staff other than superusers see the events of their territories (the payload's territory id).
    """

    list_display = ("topic", "status", "attempts", "available_at", "created_at", "aggregate_id")
    list_filter = ("status", "topic")
    search_fields = ("=aggregate_id", "=id")
    readonly_fields = (
        "id",
        "topic",
        "aggregate_type",
        "aggregate_id",
        "payload",
        "status",
        "attempts",
        "available_at",
        "last_error",
        "created_at",
        "dispatched_at",
    )
    actions = ["retry_failed_events"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        territory_ids = [str(pk) for pk in admin_territories(request).values_list("pk", flat=True)]
        return queryset.filter(payload__territory_id__in=territory_ids)

    @admin.action(description="Retry the selected failed events", permissions=["change"])
    def retry_failed_events(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        failed = list(queryset.filter(status=OutboxStatus.FAILED).values_list("pk", flat=True))
        for event_id in failed:
            outbox_retry(event_id=event_id)
        skipped = queryset.count() - len(failed)
        if failed:
            self.message_user(request, f"Queued {len(failed)} failed event(s) for delivery again.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} event(s) that had not failed.", messages.WARNING)


@admin.register(AccessRecord)
class AccessRecordAdmin(ReadOnlyAdmin, TerritoryScopedAdmin):
    """Who read which PHI, where and when. Nobody edits or deletes these."""

    territory_lookup = "territory_id"
    list_display = ("at", "user", "territory_id", "content_type", "object_link", "action", "channel")
    list_filter = ("channel", "action", "content_type")
    list_select_related = ("user", "content_type")
    search_fields = ("=object_id", "user__username")
    readonly_fields = ("user", "territory_id", "content_type", "object_id", "action", "channel", "at")
    date_hierarchy = "at"

    @admin.display(description="object id", ordering="object_id")
    def object_link(self, obj: AccessRecord) -> str:
        return format_html("<code>{}</code>", obj.object_id)
