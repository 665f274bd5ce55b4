"""Territories and memberships in the back office.

Memberships are saved and removed through ``membership_grant`` / ``membership_revoke`` so that the
guardian groups that carry the actual permissions stay in step with the rows staff see.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from core.admin import ScopedRelatedListFilter, TerritoryScopedAdmin

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
