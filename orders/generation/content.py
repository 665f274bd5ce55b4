"""What generated records say: fictional people and places, and the baskets clinicians order.

Every name, address and identifier here is made up (phone numbers in the 555-01xx fictional
range, e-mail at example.org, MBIs of the valid shape that CMS never issued to these people).
Baskets use the demo catalog (``seed_demo``): products shipped from the warehouse, each with the
ICD-10-CM codes an order for it usually carries.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from orders.services import ItemRequest
from patients.models import AdministrativeSex, PayerKind, PayerType


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


FIRST_NAMES = _words(
    "Abigail Adrian Agnes Albert Alice Alma Alonzo Amelia Anders Anita Arthur Aurora Beatrice Bennett "
    "Bernice Blanche Boris Calvin Camille Carmen Cecil Celeste Clara Clifford Cora Cyrus Daisy Dalton "
    "Delia Desmond Dolores Dorian Edgar Edith Edmund Eleanor Elias Eloise Elmer Esther Eugene Evelyn "
    "Felix Flora Florence Franklin Gemma Gideon Gloria Gordon Greta Harold Harriet Hazel Herbert Hollis "
    "Imelda Ingrid Irving Isadora Ivan Jasper Josephine Judith Julius Katrina Lavinia Leland Leona "
    "Lionel Lorraine Lucille Mabel Malcolm Marguerite Marvin Matilda Maxine Milton Minerva Mortimer "
    "Myrtle Nadia Nathaniel Nell Norbert Octavia Odette Orville Otis Pearl Percival Phoebe Priscilla "
    "Quentin Ramona Reginald Rhoda Roland Rosalind Rufus Sabine Selma Silas Stella Sylvia Thaddeus "
    "Theodora Ulysses Ursula Vera Vernon Viola Virgil Walter Wilhelmina Winifred Xavier Yolanda Yvonne "
    "Zachary Zelda",
)

LAST_NAMES = _words(
    "Abernathy Ackerley Aldridge Ashcombe Bancroft Barrowman Beaumont Blackwood Bramwell Calloway "
    "Castellano Chadwick Cromwell Dalrymple Davenport Delacroix Draycott Easton Ellsworth Fairbanks "
    "Farrington Fenwick Galloway Gladstone Greenleaf Haldane Hargreaves Hathaway Holloway Huxley "
    "Inglewood Jarrett Kendrick Kingsley Lancaster Larkin Lindqvist Lockhart Marchetti Merriweather "
    "Montague Northcott Okonkwo Osterhagen Pemberton Penhaligon Prescott Pruitt Quartermaine Radcliffe "
    "Ravenscroft Redgrave Rockwell Salazar Sinclair Southwick Stanhope Sterling Templeton Thackeray "
    "Thornbury Underhill Vandermeer Villanueva Wainwright Westbrook Whitlock Wilberforce Winslow "
    "Wrenfield Yardley Zimmerman",
)

STREETS = _words(
    "Birchwood Lane|Larkspur Court|Quarry Road|Magnolia Bend|Cypress Hollow Drive|Pelican Way|"
    "Juniper Street|Harbor View Road|Old Mill Road|Maple Terrace|Sycamore Avenue|Chestnut Ridge|"
    "Willow Creek Drive|Aspen Circle|Orchard Lane|Prairie Rose Road|Lakeshore Drive|Cedar Bluff Road|"
    "Foxglove Way|Heron Point",
    sep="|",
)

# (city, state, ZIP prefix) per territory region; every territory draws from one row.
REGIONS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Upper Midwest", (("Duluth", "MN", "558"), ("Fargo", "ND", "581"), ("Bismarck", "ND", "585"))),
    ("Gulf Coast", (("Mobile", "AL", "366"), ("Gulfport", "MS", "395"), ("Baton Rouge", "LA", "708"))),
    ("New England", (("Portland", "ME", "041"), ("Burlington", "VT", "054"), ("Worcester", "MA", "016"))),
    ("Mountain West", (("Boise", "ID", "837"), ("Missoula", "MT", "598"), ("Casper", "WY", "826"))),
    ("Southwest", (("Tucson", "AZ", "857"), ("Las Cruces", "NM", "880"), ("El Paso", "TX", "799"))),
    ("Great Lakes", (("Toledo", "OH", "436"), ("Grand Rapids", "MI", "495"), ("Green Bay", "WI", "543"))),
    ("Pacific Northwest", (("Spokane", "WA", "992"), ("Eugene", "OR", "974"), ("Tacoma", "WA", "984"))),
    ("Carolinas", (("Asheville", "NC", "288"), ("Greenville", "SC", "296"), ("Wilmington", "NC", "284"))),
)

PROVIDER_CREDENTIALS = ("MD", "MD", "DO", "NP", "PA")

ALLERGIES = ("sulfa", "penicillin", "latex", "codeine", "adhesive tape")
MEDICATIONS = ("metformin 500 mg", "lisinopril 10 mg", "atorvastatin 20 mg", "levothyroxine 50 mcg", "amlodipine 5 mg")

COMMERCIAL_PAYERS = (("Aetna", "Choice POS II"), ("Blue Cross Blue Shield", "PPO"), ("UnitedHealthcare", "Choice Plus"))

# The MBI's letters (no S, L, O, I, B, Z) and the positions that may be a letter or a digit.
_MBI_LETTERS = "ACDEFGHJKMNPQRTUVWXY"


def mbi(rng: random.Random) -> str:
    """A Medicare Beneficiary Identifier of the valid shape (``core.identifiers``)."""
    digits = "0123456789"
    either = digits + _MBI_LETTERS
    # Positions 1-11: digit 1-9, letter, letter or digit, digit, letter, letter or digit, digit, letter, letter,
    # digit, digit.
    pattern = [
        "123456789", _MBI_LETTERS, either, digits, _MBI_LETTERS, either, digits, _MBI_LETTERS, _MBI_LETTERS, digits,
        digits,
    ]  # fmt: skip
    return "".join(rng.choice(choices) for choices in pattern)


@dataclass(frozen=True)
class PersonDetails:
    first_name: str
    last_name: str
    date_of_birth: dt.date
    sex: str
    mbi: str | None
    phone: str
    email: str
    address: dict[str, str]
    allergies: list[str] | None
    medications: list[str] | None


def person(rng: random.Random, *, region: int, medicare: bool, serial: int) -> PersonDetails:
    """A fictional patient of territory region ``region``; ``serial`` keeps e-mail addresses apart."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    city, state, zip_prefix = rng.choice(REGIONS[region % len(REGIONS)][1])
    oldest, youngest = (1930, 1959) if medicare else (1955, 2001)
    born = dt.date(rng.randint(oldest, youngest), rng.randint(1, 12), rng.randint(1, 28))
    return PersonDetails(
        first_name=first,
        last_name=last,
        date_of_birth=born,
        sex=rng.choice((AdministrativeSex.FEMALE, AdministrativeSex.MALE)),
        mbi=mbi(rng) if medicare else None,
        phone=f"555-01{rng.randint(0, 99):02d}-{rng.randint(0, 9999):04d}",
        email=f"{first.lower()}.{last.lower()}{serial}@example.org",
        address={
            "line1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
            "line2": "",
            "city": city,
            "state": state,
            "postal_code": f"{zip_prefix}{rng.randint(0, 99):02d}",
        },
        allergies=[rng.choice(ALLERGIES)] if rng.random() < 0.2 else None,
        medications=rng.sample(MEDICATIONS, rng.randint(1, 3)) if rng.random() < 0.5 else None,
    )


@dataclass(frozen=True)
class PayerProfile:
    """How a patient pays: the coverage on file."""

    key: str
    payer_type: str
    payer_kind: str
    weight: float


PAYER_PROFILES = (
    PayerProfile("medicare", PayerType.INSURANCE, PayerKind.MEDICARE_FFS, 0.55),
    PayerProfile("commercial", PayerType.INSURANCE, PayerKind.COMMERCIAL, 0.2),
    PayerProfile("cash", PayerType.CASH, "", 0.25),
)


# A basket's line is what the API asks of a new order's line.
Line = ItemRequest


@dataclass(frozen=True)
class Basket:
    """A usual order: its lines, the diagnoses that go with it and a service type."""

    key: str
    service_type: str
    diagnosis_codes: tuple[str, ...]
    lines: tuple[Line, ...]
    payer: str  # "insurance" (HCPCS-billed supplies) or "cash" (cash-pay medications and supplies)


def _daily(sku: str, sig: str, *, refills: int = 3) -> Line:
    return Line(sku, 1, sig, 1, 1, "d", refills, 30)


BASKETS: tuple[Basket, ...] = (
    Basket(
        "cpap-resupply",
        "CPAP resupply",
        ("G47.33",),
        (Line("CPAP-MASK-FULL", 1), Line("CPAP-FILTER-DISPOSABLE", 2)),
        "insurance",
    ),
    Basket(
        "cpap-nasal",
        "CPAP resupply",
        ("G47.33",),
        (Line("CPAP-MASK-NASAL", 1), Line("CPAP-HEADGEAR", 1), Line("CPAP-TUBING", 1)),
        "insurance",
    ),
    Basket(
        "cpap-filters",
        "CPAP supplies",
        ("G47.33",),
        (Line("CPAP-FILTER-DISPOSABLE", 2), Line("CPAP-WATER-CHAMBER", 1)),
        "insurance",
    ),
    Basket(
        "diabetes-testing",
        "Diabetes testing supplies",
        ("E11.9",),
        (Line("DIAB-TEST-STRIPS-50", 2), Line("DIAB-LANCETS-100", 1)),
        "insurance",
    ),
    Basket(
        "glucose-monitor",
        "Glucose monitor and supplies",
        ("E11.65",),
        (Line("DIAB-GLUCOSE-MONITOR", 1), Line("DIAB-TEST-STRIPS-50", 1), Line("DIAB-LANCETS-100", 1)),
        "insurance",
    ),
    Basket("wound-care", "Wound care", ("L97.412",), (Line("WOUND-FOAM-BORDER-16", 10),), "insurance"),
    Basket("pressure-ulcer", "Wound care", ("L89.153",), (Line("WOUND-FOAM-BORDER-16", 15),), "insurance"),
    Basket("walker", "Mobility aid", ("M17.11",), (Line("MOB-WALKER-FOLDING-WHEELED", 1),), "insurance"),
    Basket(
        "sildenafil",
        "Erectile dysfunction",
        ("N52.9",),
        (_daily("RX-SILDENAFIL-20MG", "Take 1 tablet by mouth daily as needed"),),
        "cash",
    ),
    Basket(
        "tadalafil", "Erectile dysfunction", ("N52.9",), (_daily("RX-TADALAFIL-5MG", "Take 1 tablet daily"),), "cash"
    ),
    Basket(
        "hair-loss",
        "Hair loss",
        ("L64.9",),
        (
            _daily("RX-FINASTERIDE-1MG", "Take 1 tablet by mouth daily", refills=5),
            _daily("RX-MINOXIDIL-2-5MG", "Take 1 tablet by mouth daily", refills=5),
        ),
        "cash",
    ),
    Basket(
        "cash-testing",
        "Diabetes testing supplies",
        ("E11.9",),
        (Line("DIAB-TEST-STRIPS-50", 2), Line("DIAB-LANCETS-100", 1)),
        "cash",
    ),
)

NOTES = (
    "Quarterly resupply.",
    "Patient reports worn cushion; replace.",
    "Tests twice a day.",
    "Change dressing every other day.",
    "Unsteady gait after knee surgery.",
    "Continue current therapy; follow up in 90 days.",
    None,
    None,
)

CANCEL_REASONS = ("Patient no longer needs it", "Duplicate of an earlier order", "Patient moved out of the area")
REJECT_REASONS = ("Coverage could not be confirmed", "Documentation incomplete after follow-up")
CARRIERS = ("UPS", "FedEx", "USPS")
