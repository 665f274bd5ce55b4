"""Django serializers (dumpdata and ``django.core.serializers``) that export encrypted fields sealed.

Django's Python-based serializers (python, json, jsonl, yaml) pass dates, numbers and None through
as they are and call ``Field.value_to_string`` for anything else; a date of birth would therefore
leave in clear. These formats, installed in place of Django's through ``SERIALIZATION_MODULES``,
write every encrypted field as the token its row stores (``EncryptedFieldMixin.value_to_string``).
The XML serializer always calls ``value_to_string`` and needs no replacement. Loading such an
export back (``loaddata``) is not supported: the tokens would be sealed a second time.
"""

from __future__ import annotations

from typing import Any

from django.core.serializers import python

from core.fields import EncryptedFieldMixin


class SealedPHISerializer(python.Serializer):
    def _value_from_field(self, obj: Any, field: Any) -> Any:
        if isinstance(field, EncryptedFieldMixin):
            return field.value_to_string(obj)
        return super()._value_from_field(obj, field)  # type: ignore[misc]  # Django's, not in its stubs
