from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.forms import ModelForm
from django.http import HttpRequest

from .models import User
from .services import user_tokens_revoke

# Changing any of these changes what the user may do: their bearer tokens must not outlive it.
ACCESS_FIELDS = {"groups", "user_permissions", "is_superuser", "is_staff"}


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "is_active")

    def save_related(self, request: HttpRequest, form: ModelForm[Any], formsets: Any, change: bool) -> None:
        """Saves the groups and permissions, then revokes the user's tokens if their access changed.

        A password change needs nothing here: the token fingerprint covers the password.
        """
        super().save_related(request, form, formsets, change)
        if change and ACCESS_FIELDS & set(form.changed_data):
            user_tokens_revoke(user=form.instance)
