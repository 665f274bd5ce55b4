"""Territory scoping for admin pages: staff see the rows of their territories; superusers see all.

The scoping asks ``territories.selectors.back_office_territories`` — the one place back-office
territory access is decided, with the same object permissions the API asks (``access_territory``
for rows, ``view_phi`` for pages that show PHI) and, per territory, the role's model permission
for the page (view, change, delete). A global model permission that one role grants does not
open another territory where the user holds a role without it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.db.models.options import Options
from django.http import Http404, HttpRequest
from django_stubs_ext import StrOrPromise

from .models import Territory, TerritoryPermission
from .selectors import back_office_territories

# The model permissions that let a role do ``action`` on a model's admin pages ("view" also
# follows from "change", as in Django's admin).
_ACTION_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "view": ("view", "change"),
    "change": ("change",),
    "add": ("add",),
    "delete": ("delete",),
}


def model_permissions(opts: Options[Any], action: str) -> tuple[str, ...]:
    """``("app_label.codename", ...)``: the model permissions any one of which allows ``action``."""
    return tuple(f"{opts.app_label}.{get_permission_codename(name, opts)}" for name in _ACTION_PERMISSIONS[action])


def admin_territories(
    request: HttpRequest,
    *,
    permission: TerritoryPermission = TerritoryPermission.ACCESS,
    model_permissions: tuple[str, ...] | None = None,
) -> QuerySet[Territory]:
    """The territories the admin user works in (every active one for a superuser).

    Without ``model_permissions``: where the user holds ``permission`` in a staff role. With them:
    where their role grants one of them (see ``back_office_territories``).
    """
    return back_office_territories(user=request.user, permission=permission, model_permissions=model_permissions)


def object_in_territories(obj: models.Model, territory_lookup: str, territories: QuerySet[Territory]) -> bool:
    """Whether ``obj`` belongs to one of ``territories`` (``territory_lookup`` as on the admin)."""
    return (
        type(obj)._default_manager.filter(pk=obj.pk, **{f"{territory_lookup}__in": territories.values("pk")}).exists()
    )


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
    default; ``"pk"`` for Territory itself, ``"territory_id"`` for a bare UUID column).
    ``territory_permission`` is the object permission a row's territory needs before its page
    shows (``view_phi`` where the page shows PHI). A row shows only where, in addition, the
    user's role there grants this model's view (or change) permission; changing and deleting a
    row need the role's change or delete permission in the row's territory.

    Objects outside are missing from the queryset, so their pages answer 404 like objects that
    do not exist. Foreign-key choices to territory-scoped models (and to Territory) are limited
    the same way.
    """

    territory_lookup = "territory"
    territory_permission: TerritoryPermission = TerritoryPermission.ACCESS

    def scoped_territories(self, request: HttpRequest, action: str = "view") -> QuerySet[Territory]:
        """The territories where the user may do ``action`` (view, change, add, delete) on this model."""
        return admin_territories(
            request, permission=self.territory_permission, model_permissions=model_permissions(self.opts, action)
        )

    def in_scope(self, request: HttpRequest, obj: models.Model, action: str = "view") -> bool:
        """Whether the user may do ``action`` on ``obj`` in its territory."""
        if request.user.is_superuser:
            return True
        return object_in_territories(obj, self.territory_lookup, self.scoped_territories(request, action))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.territory_lookup}__in": self.scoped_territories(request).values("pk")})

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or self.in_scope(request, obj, "view"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or self.in_scope(request, obj, "change"))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or self.in_scope(request, obj, "delete"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Adding needs a territory where the user's role grants this model's add permission (the
        global permission alone may come from a role held in another territory)."""
        allowed = super().has_add_permission(request)
        return allowed and (request.user.is_superuser or self.scoped_territories(request, "add").exists())

    def territory_id_of(self, obj: models.Model) -> Any:
        """The id of the territory ``obj`` belongs to, read through ``territory_lookup`` (saved or not)."""
        *path, last = self.territory_lookup.split("__")
        target: Any = obj
        for part in path:
            target = getattr(target, part)
        return getattr(target, "territory_id" if last == "territory" else last)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Writes only into a territory where the user's role may add (or change) this model: a row
        moved or created elsewhere is refused (403) and nothing is saved."""
        if not request.user.is_superuser:
            action = "change" if change else "add"
            if not self.scoped_territories(request, action).filter(pk=self.territory_id_of(obj)).exists():
                raise PermissionDenied
        super().save_model(request, obj, form, change)

    def _get_obj_does_not_exist_redirect(self, request: HttpRequest, opts: Any, object_id: str) -> Any:
        # Django redirects to the index with a message; an object the user may not see is simply not found.
        raise Http404

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "queryset" not in kwargs:
            choices = _territory_scoped_choices(db_field.related_model, request)
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TerritoryScopedInline(admin.options.InlineModelAdmin):
    """An inline whose rows live in the parent object's territory.

    Seeing, adding, changing or deleting its rows needs the inline model's permission in the
    parent's territory (the parent admin's ``territory_lookup`` and ``territory_permission``).
    """

    def _parent_admin(self) -> TerritoryScopedAdmin:
        parent_admin = self.admin_site._registry[self.parent_model]
        assert isinstance(parent_admin, TerritoryScopedAdmin)
        return parent_admin

    def _parent_in_scope(self, request: HttpRequest, obj: Any, action: str) -> bool:
        if obj is None or request.user.is_superuser:
            return True
        parent_admin = self._parent_admin()
        territories = admin_territories(
            request,
            permission=parent_admin.territory_permission,
            model_permissions=model_permissions(self.opts, action),
        )
        return object_in_territories(obj, parent_admin.territory_lookup, territories)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and self._parent_in_scope(request, obj, "view")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_add_permission(request, obj) and self._parent_in_scope(request, obj, "add")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self._parent_in_scope(request, obj, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self._parent_in_scope(request, obj, "delete")


class ScopedRelatedListFilter(admin.RelatedFieldListFilter):
    """A related-object filter offering only the territories (or territory-scoped objects) the user may see."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list[tuple[str, StrOrPromise]]:
        choices = _territory_scoped_choices(field.related_model, request)
        if choices is None:
            return super().field_choices(field, request, model_admin)
        return [(str(obj.pk), str(obj)) for obj in choices]


TerritoryListFilter = ScopedRelatedListFilter
