"""AES-256-GCM sealing of PHI and keyed blind indexes (core.crypto), without the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import traceback
from typing import Any

import pytest
from django.conf import settings

from core import crypto
from core.crypto import PHIDecryptionError, blind_index, open_token, seal

PLAINTEXT = "Zelda Quartermaine, 1948-07-09"
CONTEXT = b"7d0c4e3a-north|first_name"


def _error_text(exc: BaseException) -> str:
    """Everything an exception would show: message, repr, and the whole chained traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def _body(token: str) -> bytes:
    return base64.urlsafe_b64decode(token.split(":", 2)[2])


def _with_body(token: str, body: bytes) -> str:
    version, key_id, _ = token.split(":", 2)
    return f"{version}:{key_id}:{base64.urlsafe_b64encode(body).decode()}"


def test_seal_then_open_returns_the_plaintext() -> None:
    # Given a value sealed with a territory and field as associated data
    token = seal(PLAINTEXT, associated_data=CONTEXT)

    # When it is opened with the same associated data
    opened = open_token(token, associated_data=CONTEXT)

    # Then the plaintext comes back, and the token is phi1:<active key id>:<nonce || ciphertext || tag>
    assert opened == PLAINTEXT
    assert token.startswith("phi1:k1:")
    assert PLAINTEXT not in token
    assert len(_body(token)) == crypto.NONCE_BYTES + len(PLAINTEXT.encode()) + 16


def test_seal_round_trips_non_ascii_and_empty_text() -> None:
    for value in ("José Núñez-Ölberg 山田", ""):
        assert open_token(seal(value, associated_data=CONTEXT), associated_data=CONTEXT) == value


def test_equal_plaintexts_give_different_tokens() -> None:
    # Given the same value sealed twice with the same context
    first = seal(PLAINTEXT, associated_data=CONTEXT)
    second = seal(PLAINTEXT, associated_data=CONTEXT)

    # Then the tokens differ (a fresh random nonce each time) and both open
    assert first != second
    assert _body(first)[: crypto.NONCE_BYTES] != _body(second)[: crypto.NONCE_BYTES]
    assert open_token(first, associated_data=CONTEXT) == open_token(second, associated_data=CONTEXT) == PLAINTEXT


@pytest.mark.parametrize(
    "other_context",
    [
        pytest.param(b"5b1f9a77-south|first_name", id="other territory"),
        pytest.param(b"7d0c4e3a-north|last_name", id="other field"),
        pytest.param(b"", id="no associated data"),
    ],
)
def test_wrong_associated_data_does_not_open(other_context: bytes) -> None:
    # Given a token bound to one territory and field
    token = seal(PLAINTEXT, associated_data=CONTEXT)

    # When it is opened in another context
    with pytest.raises(PHIDecryptionError) as caught:
        open_token(token, associated_data=other_context)

    # Then it fails, and nothing in the error shows the plaintext
    assert str(caught.value) == "PHI token does not open with its key and context"
    assert "Zelda" not in _error_text(caught.value)


def test_unknown_key_id_does_not_open(settings: Any) -> None:
    # Given a token sealed with k1, and a keyring from which k1 has been removed
    token = seal(PLAINTEXT, associated_data=CONTEXT)
    settings.PHI_ENCRYPTION_KEYS = ",".join(
        entry for entry in settings.PHI_ENCRYPTION_KEYS.split(",") if not entry.startswith("k1:")
    )
    settings.PHI_ACTIVE_KEY_ID = "k2"

    # When it is opened
    with pytest.raises(PHIDecryptionError) as caught:
        open_token(token, associated_data=CONTEXT)

    # Then the error names the key id only
    assert str(caught.value) == "PHI token sealed with unknown key id 'k1'"
    assert "Zelda" not in _error_text(caught.value)


def test_a_token_relabelled_with_another_key_id_does_not_open() -> None:
    token = seal(PLAINTEXT, associated_data=CONTEXT)
    relabelled = token.replace("phi1:k1:", "phi1:k2:", 1)

    with pytest.raises(PHIDecryptionError):
        open_token(relabelled, associated_data=CONTEXT)


def _flip_last_byte(token: str) -> str:
    body = bytearray(_body(token))
    body[-1] ^= 0x01
    return _with_body(token, bytes(body))


def _flip_ciphertext_byte(token: str) -> str:
    body = bytearray(_body(token))
    body[crypto.NONCE_BYTES] ^= 0x80
    return _with_body(token, bytes(body))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_flip_last_byte, id="tag changed"),
        pytest.param(_flip_ciphertext_byte, id="ciphertext changed"),
        pytest.param(lambda t: _with_body(t, _body(t)[:-1]), id="truncated"),
        pytest.param(lambda t: _with_body(t, _body(t)[:5]), id="shorter than a nonce"),
        pytest.param(lambda t: t[:-3] + "!!!", id="not base64"),
        pytest.param(lambda t: t + "é", id="not ascii"),
        pytest.param(lambda t: t.replace("phi1:", "phi2:", 1), id="other version"),
        pytest.param(lambda t: "Zelda", id="no token at all"),
    ],
)
def test_a_tampered_token_does_not_open(tamper: Any) -> None:
    token = seal(PLAINTEXT, associated_data=CONTEXT)

    with pytest.raises(PHIDecryptionError) as caught:
        open_token(tamper(token), associated_data=CONTEXT)

    assert "Zelda" not in _error_text(caught.value)
    assert "Quartermaine" not in _error_text(caught.value)


def test_rotation_keeps_old_tokens_readable_and_seals_new_ones_with_the_active_key(settings: Any) -> None:
    # Given a token sealed while k1 was active
    old_token = seal(PLAINTEXT, associated_data=CONTEXT)
    assert crypto.token_key_id(old_token) == "k1"

    # When k2 becomes the active key
    settings.PHI_ACTIVE_KEY_ID = "k2"

    # Then the old token still opens, and new values are sealed with k2
    assert open_token(old_token, associated_data=CONTEXT) == PLAINTEXT
    new_token = seal(PLAINTEXT, associated_data=CONTEXT)
    assert new_token.startswith("phi1:k2:")
    assert crypto.token_key_id(new_token) == "k2"
    assert open_token(new_token, associated_data=CONTEXT) == PLAINTEXT
    assert crypto.keyring().active_key_id == "k2"


def test_blind_index_is_the_keyed_hmac_of_the_normalized_value() -> None:
    key = base64.b64decode(settings.PHI_BLIND_INDEX_KEY)
    expected = hmac.new(key, b"patient.last_name\x00garcia lopez", hashlib.sha256).hexdigest()

    assert blind_index("García López", purpose="patient.last_name") == expected
    assert len(expected) == 64


@pytest.mark.parametrize(
    "variant", ["José García", "jose garcia", "JOSE GARCIA", "  José\t  García ", "Jose\u0301 Garci\u0301a"]
)
def test_blind_index_ignores_case_accents_and_spacing(variant: str) -> None:
    assert blind_index(variant, purpose="patient.full_name") == blind_index("Jose Garcia", purpose="patient.full_name")


def test_blind_index_differs_per_purpose_and_per_value() -> None:
    first_name = blind_index("Morgan", purpose="patient.first_name")

    assert blind_index("Morgan", purpose="patient.last_name") != first_name
    assert blind_index("Morgana", purpose="patient.first_name") != first_name
    assert blind_index("Mor gan", purpose="patient.first_name") != first_name


def test_blind_index_depends_on_the_key(settings: Any) -> None:
    before = blind_index("Morgan", purpose="patient.first_name")

    settings.PHI_BLIND_INDEX_KEY = base64.b64encode(b"\x08" * 32).decode()

    assert blind_index("Morgan", purpose="patient.first_name") != before
