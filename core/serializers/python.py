"""Django's python serializer, with encrypted fields exported sealed (see core.serializers)."""

from django.core.serializers import python as django_python

from core.serializers import SealedPHISerializer


class Serializer(SealedPHISerializer):
    pass


Deserializer = django_python.Deserializer
