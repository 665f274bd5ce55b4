"""Shifts and staffing plans in the back office: ops keep the shifts of their warehouses; the plans
are the workforce agent's and read-only (utilisation drawn as a bar, the days over capacity marked)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.models import User
from core.admin import ReadOnlyAdmin

from . import staffing
from .models import Shift, StaffingPlan


@admin.register(Shift)
class ShiftAdmin(admin.ModelAdmin):
    list_display = ("day", "warehouse", "person", "minutes")
    list_filter = ("warehouse", "day")
    list_select_related = ("warehouse", "person")
    ordering = ("-day", "warehouse__code", "person__username")
    show_full_result_count = False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "person":
            kwargs["queryset"] = User.objects.filter(is_active=True).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Shift, form: Any, change: bool) -> None:
        staffing.shift_save(shift=obj)

    def delete_model(self, request: HttpRequest, obj: Shift) -> None:
        staffing.shift_delete(shift=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Shift]) -> None:
        for shift in queryset.order_by("pk"):
            staffing.shift_delete(shift=shift)


@admin.register(StaffingPlan)
class StaffingPlanAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "warehouse",
        "open_tasks",
        "required_minutes",
        "available_minutes",
        "utilisation",
        "tasks_that_do_not_fit",
        "calculated_at",
    )
    list_filter = ("warehouse", "day")
    list_select_related = ("warehouse",)
    ordering = ("-day", "warehouse__code")
    show_full_result_count = False

    @admin.display(description="utilisation")
    def utilisation(self, plan: StaffingPlan) -> str:
        """The required minutes in percent of the available ones, drawn as a bar (red over 100%)."""
        if plan.utilisation_percent is None:
            return "nobody on shift" if plan.required_minutes else "—"
        width = min(100, plan.utilisation_percent)
        return format_html(
            '<svg class="utilisation-bar" viewBox="0 0 100 8" width="100" height="8" role="img" aria-label="{}%">'
            '<rect width="100" height="8" fill="#e3e8ee"></rect>'
            '<rect width="{}" height="8" fill="{}"></rect></svg> {}%',
            plan.utilisation_percent,
            width,
            "#9a2a12" if plan.over_capacity else "#146c2e",
            plan.utilisation_percent,
        )

    @admin.display(description="tasks that do not fit")
    def tasks_that_do_not_fit(self, plan: StaffingPlan) -> int:
        return len(plan.unfitted_task_ids)
