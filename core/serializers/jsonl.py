"""Django's jsonl serializer, with encrypted fields exported sealed (see core.serializers)."""

from django.core.serializers import jsonl as django_jsonl

from core.serializers import SealedPHISerializer


class Serializer(SealedPHISerializer, django_jsonl.Serializer):
    pass


Deserializer = django_jsonl.Deserializer
