"""Back-office test helpers: signed-in Django test clients and a superuser."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User


@pytest.fixture
def superuser(db: Any) -> User:
    return User.objects.create_superuser(username="root", email="root@example.org", password="test-password")


def signed_in(user: User) -> Client:
    """A Django test client signed in to the admin as ``user``."""
    client = Client()
    client.force_login(user)
    return client


def result_ids(response: Any) -> set[Any]:
    """The primary keys of the rows a changelist response shows."""
    return {obj.pk for obj in response.context["cl"].result_list}


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]
