"""Django's json serializer, with encrypted fields exported sealed (see core.serializers)."""

from django.core.serializers import json as django_json

from core.serializers import SealedPHISerializer


class Serializer(SealedPHISerializer, django_json.Serializer):
    pass


Deserializer = django_json.Deserializer
