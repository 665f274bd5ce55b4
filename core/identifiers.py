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


MBI_ERROR = "Enter a valid Medicare Beneficiary Identifier (11 characters)."


def normalize_mbi(value: str) -> str:
    """The MBI as stored and sent: no dashes or spaces, upper case. CMS prints MBIs with dashes for
    reading only; HL7's NamingSystem for them (http://hl7.org/fhir/sid/us-mbi, "Medicare Beneficiary
    Identifier (United States)", active as of 2022-02-07) says they are represented without any spaces
    or dashes."""
    return "".join(value.split()).replace("-", "").upper()


def is_valid_mbi(value: str) -> bool:
    return bool(_MBI.match(normalize_mbi(value)))


def mbi_cleaned(value: str | None) -> str | None:
    """The one place an MBI is checked before it is written: None for an empty value, else the
    normalised MBI. Raises ValidationError (code ``invalid_mbi``, the value never repeated)."""
    if value is None or not value.strip():
        return None
    validate_mbi(value)
    return normalize_mbi(value)


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
        raise ValidationError(MBI_ERROR, code="invalid_mbi")


def validate_icd10(value: str) -> None:
    if not is_valid_icd10(value):
        raise ValidationError("Enter a valid ICD-10-CM code, such as E11.9.", code="invalid_icd10")


def validate_hcpcs(value: str) -> None:
    if not is_valid_hcpcs(value):
        raise ValidationError("Enter a valid HCPCS Level II code: a letter and four digits.", code="invalid_hcpcs")


# USPS state, district, territory and armed-forces codes: USPS Publication 28 (Postal Addressing
# Standards), Appendix B "Two-Letter State and Possession Abbreviations", as published at
# pe.usps.com/text/pub28/28apb.htm (checked 2025-01). Includes the freely associated states
# (FM, MH, PW) that USPS serves and the military codes AA, AE, AP.
US_STATE_CODES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "AS": "American Samoa", "GU": "Guam", "MP": "Northern Mariana Islands", "PR": "Puerto Rico",
    "VI": "U.S. Virgin Islands", "FM": "Federated States of Micronesia", "MH": "Marshall Islands",
    "PW": "Palau", "AA": "Armed Forces Americas", "AE": "Armed Forces Europe", "AP": "Armed Forces Pacific",
}  # fmt: skip


def is_us_state_code(value: str) -> bool:
    """Whether ``value`` (any case, surrounding spaces ignored) is a USPS state or territory code."""
    return value.strip().upper() in US_STATE_CODES


# What a person is told when an address field is wrong (the API and the portal say the same).
ZIP_ERROR = "Enter a 5-digit ZIP code, such as 58102, or ZIP+4, such as 58102-1234."
STATE_ERROR = "Enter the two-letter USPS code of a US state or territory, such as ND for North Dakota."
