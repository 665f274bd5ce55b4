"""The write floor's table: one tiny row per request."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class FloorWrite(models.Model):
    """One row per ``POST /bench/floor/write``: the least a write can be on this stack."""

    created_at = models.DateTimeField(auto_now_add=True)

    # Declared because the type checker runs with settings that do not install this app.
    objects: ClassVar[models.Manager[FloorWrite]] = models.Manager()

    class Meta:
        # Named, so that the harness's tests can import the floor views under settings without this app.
        app_label = "bench"

    def __str__(self) -> str:
        return f"Floor write {self.pk}"
