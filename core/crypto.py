"""AES-256-GCM encryption of PHI and keyed blind indexes.

Ciphertext tokens look like ``phi1:<key id>:<base64url(nonce || ciphertext || tag)>``. The key id
names one of the keys in ``settings.PHI_ENCRYPTION_KEYS`` so keys can be rotated: new values are
sealed with ``settings.PHI_ACTIVE_KEY_ID``; older keys keep opening old values until
``manage.py reencrypt_phi`` has moved every row to the active key.

Callers pass associated data (the territory id and field name) that is authenticated but not
stored: a token copied to another territory's row, or to another column, fails to open.

No function here ever puts plaintext or key material into an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

TOKEN_VERSION = "phi1"
NONCE_BYTES = 12


class PHIDecryptionError(Exception):
    """A token could not be opened: unknown key id, damaged token, or wrong associated data."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    active_key_id: str

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active_key_id]


def _decode_key(raw: str, *, name: str) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured(f"{name} is not valid base64") from exc
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} must decode to 32 bytes (AES-256)")
    return key


def parse_keyring(spec: str, active_key_id: str) -> Keyring:
    """The keyring named by ``PHI_ENCRYPTION_KEYS`` (``<key id>:<base64 key>`` entries, comma separated)
    and ``PHI_ACTIVE_KEY_ID``. Raises ImproperlyConfigured, without key material, for anything else."""
    keys: dict[str, bytes] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        key_id, sep, raw = entry.partition(":")
        if not sep or not key_id:
            raise ImproperlyConfigured("PHI_ENCRYPTION_KEYS entries must look like '<key id>:<base64 key>'")
        keys[key_id] = _decode_key(raw, name=f"PHI encryption key {key_id!r}")
    if active_key_id not in keys:
        raise ImproperlyConfigured("PHI_ACTIVE_KEY_ID does not name a key in PHI_ENCRYPTION_KEYS")
    return Keyring(keys=keys, active_key_id=active_key_id)


# Undecorated above so that mutation testing (which skips decorated functions) covers the parsing.
_cached_keyring = lru_cache(maxsize=4)(parse_keyring)


def keyring() -> Keyring:
    """The configured keyring (parsed once per distinct configuration)."""
    return _cached_keyring(settings.PHI_ENCRYPTION_KEYS, settings.PHI_ACTIVE_KEY_ID)


def seal(plaintext: str, *, associated_data: bytes) -> str:
    """Encrypt ``plaintext`` with the active key; returns a ``phi1:`` token."""
    ring = keyring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(ring.active_key).encrypt(nonce, plaintext.encode("utf-8"), associated_data)
    body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
    return f"{TOKEN_VERSION}:{ring.active_key_id}:{body}"


def _token_parts(token: str) -> tuple[str, str]:
    """``(key id, base64 body)`` of a ``phi1:<key id>:<body>`` token; PHIDecryptionError if malformed."""
    version, _, rest = token.partition(":")
    key_id, sep, body = rest.partition(":")
    if version != TOKEN_VERSION or not sep:
        raise PHIDecryptionError("malformed PHI token")
    return key_id, body


def token_key_id(token: str) -> str:
    """The key id a token was sealed with. Raises PHIDecryptionError for a malformed token."""
    return _token_parts(token)[0]


def open_token(token: str, *, associated_data: bytes) -> str:
    """Decrypt a token made by :func:`seal` with the same associated data."""
    key_id, body = _token_parts(token)
    key = keyring().keys.get(key_id)
    if key is None:
        raise PHIDecryptionError(f"PHI token sealed with unknown key id {key_id!r}")
    try:
        raw = base64.urlsafe_b64decode(body.encode("ascii"))
        plaintext = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated_data)
    except (InvalidTag, ValueError, binascii.Error) as exc:
        raise PHIDecryptionError("PHI token does not open with its key and context") from exc
    return plaintext.decode("utf-8")


def normalize_for_index(value: str) -> str:
    """Case-, accent- and spacing-insensitive form used for blind indexes."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


@lru_cache(maxsize=4)
def _blind_index_key(raw: str) -> bytes:
    return _decode_key(raw, name="PHI_BLIND_INDEX_KEY")


def blind_index(value: str, *, purpose: str) -> str:
    """Keyed HMAC-SHA256 of the normalized value, separated per purpose (hex, 64 chars).

    Equal inputs (after normalization) give equal indexes, so exact-match search works without
    decrypting; without the key the index reveals nothing about the value.
    """
    key = _blind_index_key(settings.PHI_BLIND_INDEX_KEY)
    message = f"{purpose}\x00{normalize_for_index(value)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def blind_index_prefix(value: str, *, purpose: str, length: int) -> str | None:
    """The blind index of the first ``length`` characters of the normalized value, for prefix search.

    None when the normalized value is shorter than ``length``: such a value is found through its
    whole-value index only, and a shorter search term than ``length`` never looks for prefixes.
    """
    normalized = normalize_for_index(value)
    if len(normalized) < length:
        return None
    return blind_index(normalized[:length], purpose=purpose)
