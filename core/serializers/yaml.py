"""Django's YAML serializer, with encrypted fields exported sealed (see core.serializers)."""

from django.core.serializers import pyyaml as django_pyyaml

from core.serializers import SealedPHISerializer


class Serializer(SealedPHISerializer, django_pyyaml.Serializer):
    pass


Deserializer = django_pyyaml.Deserializer
