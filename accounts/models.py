"""The custom user model (set from the first migration)."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.crypto import salted_hmac


class User(AbstractUser):
    """A person who signs in: doctor, ops staff, admin or master distributor.

    What a user may do, and where, comes from territory memberships (``territories``); the
    user record itself only says who they are.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token_version = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Raised whenever the user's roles or territories change; bearer tokens issued before stop working.",
    )
    access_version = models.UUIDField(
        default=uuid.uuid4,
        editable=False,
        help_text=(
            "A new random value whenever what the user may do in their territories changes (memberships, roles,"
            " object permissions, a territory's active flag); names their cached permission map"
            " (territories.access), and commits or rolls back with the change that sets it."
        ),
    )

    mobile = models.CharField(
        max_length=20,
        blank=True,
        help_text="Work mobile number for staff alerts, in international form (e.g. +16125550123).",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username

    def token_fingerprint(self) -> str:
        """What a bearer token must carry to be honoured: changes with the password and ``token_version``.

        Keyed with SECRET_KEY over the stored password hash (as Django's session hash is), so any
        change of password, by any path, ends every token issued before it; ``token_version``
        does the same for changes of roles and territories (``accounts.services.user_tokens_revoke``).
        """
        return salted_hmac(
            "accounts.User.token_fingerprint", f"{self.password}:{self.token_version}", algorithm="sha256"
        ).hexdigest()[:32]
