"""The PHI keys in the settings: only well-formed AES-256 keys are accepted, and errors never show a key."""

from __future__ import annotations

import base64
import traceback
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from core import crypto

PLAINTEXT = "Zelda Quartermaine"
CONTEXT = b"7d0c4e3a-north|first_name"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


KEY_A = b"\xa1" * 32
KEY_B = b"\xb2" * 32


def _error_text(exc: BaseException) -> str:
    """Everything an exception would show: message, repr, and the whole chained traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def _refused(settings: Any, keys: str, active: str = "a") -> ImproperlyConfigured:
    """Configures ``keys`` and seals: returns the error, after checking it names no key material."""
    settings.PHI_ENCRYPTION_KEYS = keys
    settings.PHI_ACTIVE_KEY_ID = active
    with pytest.raises(ImproperlyConfigured) as caught:
        crypto.seal(PLAINTEXT, associated_data=CONTEXT)
    for entry in keys.split(","):
        secret = entry.partition(":")[2].strip()
        if secret:
            assert secret not in _error_text(caught.value)
    return caught.value


def test_a_well_formed_keyring_seals_with_the_active_key_and_opens_with_any_key(settings: Any) -> None:
    # Given two keys, with spaces around entries and an empty entry, b active
    settings.PHI_ENCRYPTION_KEYS = f" a:{b64(KEY_A)} ,, b:{b64(KEY_B)} ,"
    settings.PHI_ACTIVE_KEY_ID = "b"

    # Then both keys are there, as given, and new values are sealed with b
    ring = crypto.keyring()
    assert ring.keys == {"a": KEY_A, "b": KEY_B}
    assert ring.active_key_id == "b"
    assert ring.active_key == KEY_B
    token = crypto.seal(PLAINTEXT, associated_data=CONTEXT)
    assert crypto.token_key_id(token) == "b"
    assert crypto.open_token(token, associated_data=CONTEXT) == PLAINTEXT


def test_a_key_id_may_not_be_empty_and_an_entry_needs_its_colon(settings: Any) -> None:
    message = "PHI_ENCRYPTION_KEYS entries must look like '<key id>:<base64 key>'"

    assert str(_refused(settings, f":{b64(KEY_A)}", active="")) == message
    assert str(_refused(settings, f"a:{b64(KEY_A)},{b64(KEY_B)}")) == message


def test_the_active_key_id_must_name_a_configured_key(settings: Any) -> None:
    error = _refused(settings, f"a:{b64(KEY_A)},b:{b64(KEY_B)}", active="c")

    assert str(error) == "PHI_ACTIVE_KEY_ID does not name a key in PHI_ENCRYPTION_KEYS"


def test_no_keys_at_all_is_refused(settings: Any) -> None:
    error = _refused(settings, " , ", active="a")

    assert str(error) == "PHI_ACTIVE_KEY_ID does not name a key in PHI_ENCRYPTION_KEYS"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("not base64!", id="not base64 at all"),
        # Without strict decoding the stray characters would be dropped and this would decode to KEY_A.
        pytest.param(b64(KEY_A)[:20] + "*" + b64(KEY_A)[20:], id="a valid key with a stray character"),
        pytest.param(b64(KEY_A)[:20] + " " + b64(KEY_A)[20:], id="a valid key with a space inside"),
        pytest.param(b64(KEY_A)[:-1], id="missing its padding"),
    ],
)
def test_a_key_that_is_not_strict_base64_is_refused(settings: Any, raw: str) -> None:
    error = _refused(settings, f"a:{raw}")

    assert str(error) == "PHI encryption key 'a' is not valid base64"


@pytest.mark.parametrize("length", [16, 24, 31, 33, 64])
def test_a_key_of_any_length_but_32_bytes_is_refused(settings: Any, length: int) -> None:
    # A 16- or 24-byte key would silently give AES-128 or AES-192.
    error = _refused(settings, f"a:{b64(KEY_A)},b:{b64(bytes(range(length)))}", active="a")

    assert str(error) == "PHI encryption key 'b' must decode to 32 bytes (AES-256)"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("not base64!", "PHI_BLIND_INDEX_KEY is not valid base64", id="not base64"),
        pytest.param(b64(KEY_A)[:20] + "*" + b64(KEY_A)[20:], "PHI_BLIND_INDEX_KEY is not valid base64", id="stray"),
        pytest.param(b64(b"\x07" * 16), "PHI_BLIND_INDEX_KEY must decode to 32 bytes (AES-256)", id="16 bytes"),
    ],
)
def test_a_malformed_blind_index_key_is_refused(settings: Any, raw: str, message: str) -> None:
    settings.PHI_BLIND_INDEX_KEY = raw

    with pytest.raises(ImproperlyConfigured) as caught:
        crypto.blind_index("Morgan", purpose="patient.first_name")

    assert str(caught.value) == message
    assert raw not in _error_text(caught.value)


def test_a_key_id_may_not_contain_a_colon(settings: Any) -> None:
    # Tokens are "phi1:<key id>:<body>": a key id with a colon could never be found again.
    error = _refused(settings, f"a:b:{b64(KEY_A)}")

    assert str(error) == "PHI encryption key 'a' is not valid base64"
