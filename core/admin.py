"""Back-office building blocks that need nothing above ``core``: PHI access records for pages that
show PHI, read-only pages, and history pages that cannot write.

Territory scoping lives in ``territories.admin_scoping`` (core must not import territories); the
outbox and access-record pages, which are territory-scoped, are registered in ``territories.admin``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse

from .audit import access_record
from .models import AccessChannel


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


class ReadOnlyInline(admin.TabularInline):
    """An inline of rows only services write: shown, never added, changed or deleted here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
