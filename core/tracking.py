"""Links to a carrier's public tracking page for a shipment's tracking number.

The URL patterns are the carriers' own public tracking pages (as they answer in 2026): UPS
``https://www.ups.com/track?tracknum=<n>``, FedEx ``https://www.fedex.com/fedextrack/?trknbr=<n>``,
USPS ``https://tools.usps.com/go/TrackConfirmAction?tLabels=<n>`` and DHL
``https://www.dhl.com/us-en/home/tracking/tracking-express.html?submit=1&tracking-id=<n>``. A carrier
the table does not know has no link: its tracking number is shown as plain text.
"""

from __future__ import annotations

import re
from urllib.parse import quote

TRACKING_URLS: dict[str, str] = {
    "ups": "https://www.ups.com/track?tracknum={number}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={number}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
    "dhl": "https://www.dhl.com/us-en/home/tracking/tracking-express.html?submit=1&tracking-id={number}",
}

# The names staff type for each carrier, after lower-casing and dropping everything but letters.
CARRIER_ALIASES: dict[str, str] = {
    "ups": "ups",
    "unitedparcelservice": "ups",
    "fedex": "fedex",
    "federalexpress": "fedex",
    "fedexground": "fedex",
    "fedexexpress": "fedex",
    "usps": "usps",
    "unitedstatespostalservice": "usps",
    "uspostalservice": "usps",
    "dhl": "dhl",
    "dhlexpress": "dhl",
}


def carrier_key(carrier: str) -> str | None:
    """``"FedEx Ground"`` → ``"fedex"``; None for a carrier not in ``CARRIER_ALIASES``."""
    return CARRIER_ALIASES.get(re.sub(r"[^a-z]", "", (carrier or "").lower()))


def tracking_url(carrier: str, tracking_number: str) -> str | None:
    """The carrier's public tracking page for ``tracking_number``, or None (unknown carrier, no number).

    The number is percent-encoded whole, so nothing in it can change the link's host or path.
    """
    key = carrier_key(carrier)
    number = (tracking_number or "").strip()
    if key is None or not number:
        return None
    return TRACKING_URLS[key].format(number=quote(number, safe=""))
