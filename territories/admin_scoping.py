"""Territory scoping for admin pages: staff see the rows of their territories; superusers see all.

The scoping asks ``territories.selectors`` — the one place territory access is decided.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django_stubs_ext import StrOrPromise

from .models import Territory
from .selectors import territories_for_user


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
