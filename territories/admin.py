"""Territories and memberships in the back office.

Memberships are saved and removed through ``membership_grant`` / ``membership_revoke`` so that the
guardian groups that carry the actual permissions stay in step with the rows staff see.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin
from core.models import AccessRecord, OutboxEvent, OutboxStatus
from core.outbox import outbox_retry

from .admin_scoping import ScopedRelatedListFilter, TerritoryScopedAdmin, admin_territories, model_permissions
from .models import Territory, TerritoryMembership
from .services import membership_grant, membership_revoke, territory_create


@admin.register(Territory)
class TerritoryAdmin(TerritoryScopedAdmin):
    """Superusers create and edit territories; other staff see their own."""

    territory_lookup = "pk"
    list_display = ("code", "name", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("code", "name")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("code", "name") if obj is None else ("code", "name", "active", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The code names the territory's permission groups.
        return () if obj is None else ("code", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # orders, patients and providers keep their territory; deactivate instead

    def save_model(self, request: HttpRequest, obj: Territory, form: ModelForm[Territory], change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = territory_create(code=obj.code, name=obj.name)
        obj.pk = created.pk
        obj.active = created.active
        obj.created_at = created.created_at
        obj._state.adding = False
        obj._state.db = created._state.db


@admin.register(TerritoryMembership)
class TerritoryMembershipAdmin(TerritoryScopedAdmin):
    """Who works where, in which role. A user's territory and role groups follow every change here."""

    list_display = ("user", "territory", "role", "created_at")
    list_filter = (("territory", ScopedRelatedListFilter), "role")
    list_select_related = ("user", "territory")
    search_fields = ("user__username",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("user", "territory", "role")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # To move someone to another territory, add a membership there and delete this one.
        return () if obj is None else ("user", "territory")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Offer only what the granting admin may manage (a superuser: everything).

        Territories: those where their role grants memberships. Users: active accounts other than
        their own that are not superusers and either work nowhere yet or work in one of those
        territories; so nobody grants themselves a role, or reaches colleagues of territories
        they do not manage.
        """
        if not request.user.is_superuser:
            managed = self.scoped_territories(request, "add")
            if db_field.name == "territory":
                kwargs["queryset"] = managed
            elif db_field.name == "user":
                kwargs["queryset"] = (
                    db_field.related_model._default_manager.filter(is_active=True, is_superuser=False)
                    .exclude(pk=request.user.pk)
                    .filter(Q(memberships__isnull=True) | Q(memberships__territory__in=managed))
                    .distinct()
                    .order_by("username")
                )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(
        self, request: HttpRequest, obj: TerritoryMembership, form: ModelForm[TerritoryMembership], change: bool
    ) -> None:
        membership = membership_grant(user=obj.user, territory=obj.territory, role=obj.role)
        obj.pk = membership.pk
        obj.created_at = membership.created_at
        obj._state.adding = False
        obj._state.db = membership._state.db

    def delete_model(self, request: HttpRequest, obj: TerritoryMembership) -> None:
        membership_revoke(user=obj.user, territory=obj.territory)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TerritoryMembership]) -> None:
        for membership in queryset.select_related("user", "territory"):
            membership_revoke(user=membership.user, territory=membership.territory)


# --- core's records, scoped by territory (core cannot import territories, so they register here) ---


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
        return queryset.filter(payload__territory_id__in=self._territory_ids(request, "view"))

    def _territory_ids(self, request: HttpRequest, action: str) -> list[str]:
        """Territories (as the payloads name them) where the user's role grants ``action`` on outbox events."""
        territories = admin_territories(request, model_permissions=model_permissions(self.opts, action))
        return [str(pk) for pk in territories.values_list("pk", flat=True)]

    @admin.action(description="Retry the selected failed events", permissions=["change"])
    def retry_failed_events(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        if not request.user.is_superuser:
            queryset = queryset.filter(payload__territory_id__in=self._territory_ids(request, "change"))
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
    search_help_text = "An object's id finds its own page's records and the lists that showed it; or a username."
    readonly_fields = ("user", "territory_id", "content_type", "object_id", "object_ids", "action", "channel", "at")
    date_hierarchy = "at"

    @admin.display(description="object id", ordering="object_id")
    def object_link(self, obj: AccessRecord) -> str:
        if obj.object_id:
            return format_html("<code>{}</code>", obj.object_id)
        return f"a list of {len(obj.shown_ids)}"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AccessRecord], search_term: str
    ) -> tuple[QuerySet[AccessRecord], bool]:
        """An id also finds the list pages that showed the object (``object_ids``)."""
        found, duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term and " " not in term:
            found = found | queryset.filter(object_ids__contains=term)
        return found, duplicates
