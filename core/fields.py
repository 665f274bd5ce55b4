"""Model fields that keep PHI encrypted at rest, and blind indexes to find it.

An encrypted field holds plaintext on the model instance and ciphertext in the database. Values
read from the database stay sealed until first accessed, and are opened with the territory the
row had when it was loaded, bound as associated data together with the field name. Saving seals
the current value with the row's current territory, so moving a row to another territory
re-encrypts it. The column only ever receives sealed tokens: ``QuerySet.update()`` or a lookup
with a plaintext value raises ``TypeError`` instead of writing or querying plaintext.

Models with encrypted fields inherit :class:`PHIModel` and name their territory column through
``territory_field`` (default ``"territory"``).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from django import forms
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from . import crypto


class Sealed(str):
    """A ciphertext token, as stored in the database."""

    __slots__ = ()


class PHIModel(models.Model):
    """Base for models with encrypted fields: remembers the territory each row was loaded with."""

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Any:
        instance = super().from_db(db, field_names, values, **kwargs)
        loaded: dict[str, Any] = {}
        for field in instance._meta.concrete_fields:
            if isinstance(field, EncryptedFieldMixin):
                attname = field.territory_attname
                if attname in instance.__dict__:
                    loaded[attname] = instance.__dict__[attname]
        instance.__dict__["_phi_loaded_territory"] = loaded
        return instance


class EncryptedAttribute(DeferredAttribute):
    """Opens a sealed value on first access and keeps the plaintext on the instance.

    A data descriptor (it defines ``__set__``), so reads always pass through ``__get__`` even
    though the value lives in the instance ``__dict__``.
    """

    field: EncryptedFieldMixin

    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            value = self.field.open(instance, value)
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


class EncryptedFieldMixin(models.Field):
    """Shared behaviour: a text column of sealed tokens; subclasses say how a value becomes text and back."""

    descriptor_class = EncryptedAttribute

    def get_internal_type(self) -> str:
        return "TextField"

    # Runs when the model classes are defined, before mutation testing switches a mutant on: its
    # mutants could not be told apart (tests/core/MUTATION_SURVIVORS.md); `makemigrations --check` guards it.
    def __init__(
        self, *args: Any, territory_field: str = "territory", **kwargs: Any
    ) -> None:  # pragma: no mutate block
        self.territory_field = territory_field
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    @property
    def territory_attname(self) -> str:
        return f"{self.territory_field}_id"

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.territory_field != "territory":
            kwargs["territory_field"] = self.territory_field
        return name, path, args, kwargs

    # Text encoding of the Python value; overridden per type.
    def encode(self, value: Any) -> str:
        return str(value)

    def decode(self, text: str) -> Any:
        return text

    def associated_data(self, territory_id: Any) -> bytes:
        if territory_id is None:
            raise ValueError(f"{self.model.__name__}.{self.name} needs a territory before it can be sealed")
        return f"{territory_id}|{self.name}".encode()

    def _territory_at_load(self, instance: Any) -> Any:
        loaded = instance.__dict__.get("_phi_loaded_territory") or {}
        if self.territory_attname in loaded:
            return loaded[self.territory_attname]
        return getattr(instance, self.territory_attname)

    def open(self, instance: Any, token: Sealed) -> Any:
        territory_id = self._territory_at_load(instance)
        return self.decode(crypto.open_token(token, associated_data=self.associated_data(territory_id)))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return None if value is None else Sealed(value)

    def pre_save(self, model_instance: Any, add: bool) -> Any:
        return self.sealed_value(model_instance)

    def sealed_value(self, model_instance: Any) -> Sealed | None:
        """The token the row stores for this field: the loaded token while it was never opened and is
        under the active key and the same territory; otherwise the current value sealed afresh."""
        raw = model_instance.__dict__.get(self.attname)
        current_territory = getattr(model_instance, self.territory_attname)
        if (
            isinstance(raw, Sealed)
            and crypto.token_key_id(raw) == crypto.keyring().active_key_id
            and self._territory_at_load(model_instance) == current_territory
        ):
            return raw  # never opened, same key and context: keep the stored token
        value = getattr(model_instance, self.attname)
        if value is None:
            return None
        return Sealed(crypto.seal(self.encode(value), associated_data=self.associated_data(current_territory)))

    def get_prep_value(self, value: Any) -> Any:
        if value is None or isinstance(value, Sealed):
            return value
        raise TypeError(
            f"{self.model.__name__}.{self.name} is encrypted: write it by saving the model, "
            "and search it through its blind index"
        )

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        return value if prepared else self.get_prep_value(value)

    def value_to_string(self, obj: Any) -> Any:
        """What serializers (dumpdata, ``django.core.serializers``) export: the sealed token the row
        stores (sealed afresh when the value was changed or opened), never the plaintext; None stays None.
        Dates reach serializers through here only with ``core.serializers`` (SERIALIZATION_MODULES)."""
        token = self.sealed_value(obj)
        return None if token is None else str(token)


class EncryptedTextField(EncryptedFieldMixin):
    """Free text, encrypted (notes, reasons)."""

    _pyi_private_set_type: str | None
    _pyi_private_get_type: str | None

    def formfield(self, **kwargs: Any) -> Any:
        kwargs.setdefault("widget", forms.Textarea)
        return super().formfield(**kwargs)


class EncryptedCharField(EncryptedFieldMixin):
    """A short string, encrypted; ``max_length`` only limits form and API input."""

    _pyi_private_set_type: str | None
    _pyi_private_get_type: str | None

    def formfield(self, **kwargs: Any) -> Any:
        return super().formfield(max_length=self.max_length, **kwargs)


class EncryptedDateField(EncryptedFieldMixin):
    """A date, encrypted (date of birth)."""

    _pyi_private_set_type: datetime.date | None
    _pyi_private_get_type: datetime.date | None

    def encode(self, value: Any) -> str:
        if isinstance(value, str):
            value = datetime.date.fromisoformat(value)
        return str(value.isoformat())

    def decode(self, text: str) -> Any:
        return datetime.date.fromisoformat(text)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, Sealed):
            return datetime.date.fromisoformat(value)
        return value

    def formfield(self, **kwargs: Any) -> Any:
        return forms.DateField(required=not self.blank, label=self.verbose_name.capitalize(), **kwargs)


class EncryptedJSONField(EncryptedFieldMixin):
    """A JSON document, encrypted (address, diagnosis codes, insurance details)."""

    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def encode(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def decode(self, text: str) -> Any:
        return json.loads(text)

    def formfield(self, **kwargs: Any) -> Any:
        return forms.JSONField(required=not self.blank, label=self.verbose_name.capitalize(), **kwargs)


class BlindIndexField(models.CharField):
    """HMAC of one or more plaintext fields of the same row, recomputed on every save.

    ``sources`` name fields whose (decrypted) values are joined with a space before indexing;
    if any of them is empty the index is NULL. With ``prefix_length`` the index is of the first
    that many characters of the normalised value (``crypto.blind_index_prefix``), so a search can
    find every row starting with those letters, still without decrypting anything.
    """

    # Definition time, like EncryptedFieldMixin.__init__: not mutated.
    def __init__(
        self,
        *args: Any,
        sources: tuple[str, ...] = (),
        purpose: str = "",
        prefix_length: int | None = None,
        **kwargs: Any,
    ) -> None:  # pragma: no mutate block
        self.sources = tuple(sources)
        self.purpose = purpose
        self.prefix_length = prefix_length
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("null", True)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("db_index", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["sources"] = self.sources
        kwargs["purpose"] = self.purpose
        if self.prefix_length is not None:
            kwargs["prefix_length"] = self.prefix_length
        return name, path, args, kwargs

    def compute(self, *values: Any) -> str | None:
        parts = [v.isoformat() if isinstance(v, datetime.date) else str(v) for v in values if v not in (None, "")]
        if len(parts) != len(values):
            return None
        if self.prefix_length is not None:
            return crypto.blind_index_prefix(" ".join(parts), purpose=self.purpose, length=self.prefix_length)
        return crypto.blind_index(" ".join(parts), purpose=self.purpose)

    def pre_save(self, model_instance: Any, add: bool) -> Any:
        value = self.compute(*(getattr(model_instance, source) for source in self.sources))
        setattr(model_instance, self.attname, value)
        return value
