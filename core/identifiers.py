"""Format checks for the identifiers and code sets the system handles.

Each ``is_valid_*`` returns a bool; each ``validate_*`` raises Django's ValidationError with a
message that never repeats the value (it may be PHI, such as an MBI).
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# NPI: 10 digits whose last is a Luhn check digit computed over the prefix 80840 + the first 9
# (the card-issuer prefix assigned to US health identifiers).
_NPI = re.compile(r"^[12]\d{9}$")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_valid_npi(value: str) -> bool:
    return bool(_NPI.match(value)) and _luhn_valid("80840" + value)


def npi_check_digit(first_nine: str) -> str:
    """The check digit that completes a 9-digit NPI stem (used by demo data and factories)."""
    for digit in "0123456789":
        if _luhn_valid("80840" + first_nine + digit):
            return digit
    raise ValueError("no check digit")  # unreachable: one digit always completes a Luhn sum


# Medicare Beneficiary Identifier: 11 characters, C A AN N A AN N A A N N, where A is a letter
# other than S, L, O, I, B, Z and the first character is 1-9. Dashes are display-only.
_MBI_LETTER = "[AC-HJKMNP-RT-Y]"
_MBI = re.compile(
    rf"^[1-9]{_MBI_LETTER}[0-9AC-HJKMNP-RT-Y][0-9]{_MBI_LETTER}[0-9AC-HJKMNP-RT-Y][0-9]{_MBI_LETTER}{{2}}[0-9]{{2}}$"
)


def normalize_mbi(value: str) -> str:
    return value.replace("-", "").replace(" ", "").upper()


def is_valid_mbi(value: str) -> bool:
    return bool(_MBI.match(normalize_mbi(value)))


# ICD-10-CM: letter, digit, digit-or-letter, then optionally a dot and up to four characters.
_ICD10 = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")


def normalize_icd10(value: str) -> str:
    code = value.strip().upper()
    if "." not in code and len(code) > 3:
        code = f"{code[:3]}.{code[3:]}"
    return code


def is_valid_icd10(value: str) -> bool:
    return bool(_ICD10.match(normalize_icd10(value)))


# HCPCS Level II: one section letter and four digits.
_HCPCS = re.compile(r"^[ABCEGHJKLMPQRSTUV][0-9]{4}$")


def is_valid_hcpcs(value: str) -> bool:
    return bool(_HCPCS.match(value.strip().upper()))


def validate_npi(value: str) -> None:
    if not is_valid_npi(value):
        raise ValidationError("Enter a valid 10-digit NPI (its check digit does not match).", code="invalid_npi")


def validate_mbi(value: str) -> None:
    if not is_valid_mbi(value):
        raise ValidationError("Enter a valid Medicare Beneficiary Identifier (11 characters).", code="invalid_mbi")


def validate_icd10(value: str) -> None:
    if not is_valid_icd10(value):
        raise ValidationError("Enter a valid ICD-10-CM code, such as E11.9.", code="invalid_icd10")


def validate_hcpcs(value: str) -> None:
    if not is_valid_hcpcs(value):
        raise ValidationError("Enter a valid HCPCS Level II code: a letter and four digits.", code="invalid_hcpcs")
