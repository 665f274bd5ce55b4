"""Serializer fields shared by the API apps."""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework import serializers


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string: DRF's own field also reads integers (and booleans) as UUIDs."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str):
            self.fail("invalid", value="")
        return super().to_internal_value(data)
