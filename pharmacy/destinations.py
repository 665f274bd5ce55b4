"""Where this system may send prescriptions: a pharmacy's base URL must be https:// to a public address.

A base URL is typed by an admin (or sent through the API) and then called by the workers; left
unchecked it would let anyone who may register a pharmacy make this system call its own
network (server-side request forgery: a cloud metadata service at 169.254.169.254, a database on
10.0.0.5, a loopback admin port) or send PHI in the clear over http://.

The rule (OWASP Server-Side Request Forgery Prevention Cheat Sheet, "allow-list the destination,
resolve and check the address", reviewed 2026-12):
- the scheme is ``https`` (no ``http``, ``ftp``, ``file``, ...), with no user:password part;
- every address the host resolves to is public: not private, loopback, link-local, multicast,
  reserved, unspecified or shared (IANA special-purpose registries, RFC 6890), IPv4 in IPv6 included.

Hosts named in ``settings.PHARMACY_ALLOWED_LOCAL_HOSTS`` (tests' local servers, a pharmacy
simulator on a developer's machine) may use http:// and any address. The check runs when a
pharmacy is saved (services, so the admin and the API alike) and again before every call
(``pharmacy.connectors``), because a name may resolve elsewhere by then.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from core.exceptions import ValidationFailed

HTTPS_ONLY = "Only https:// addresses are allowed."
NO_HOST = "Enter the full address, e.g. https://pharmacy.example/fhir."
NO_CREDENTIALS = "Put credentials in the credentials field, not in the address."
NOT_PUBLIC = "The address must be public: private, loopback, link-local, multicast and reserved addresses are refused."
DOES_NOT_RESOLVE = "The host name does not resolve."

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _allowed_local(host: str) -> bool:
    allowed = {name.strip().lower().rstrip(".") for name in getattr(settings, "PHARMACY_ALLOWED_LOCAL_HOSTS", [])}
    return host.rstrip(".") in allowed


def address_is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address (an IPv4 address carried in IPv6 is judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_is_public(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """Every address ``host`` stands for (a literal address is itself); None when the name does not resolve."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    addresses = []
    for _family, _type, _proto, _name, sockaddr in answers:
        try:
            addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%")[0]))
        except ValueError:
            return None
    return addresses or None


def destination_problem(url: str, *, unresolved_allowed: bool) -> str | None:
    """Why this system must not call ``url``, or None when it may.

    ``unresolved_allowed``: whether a host name that does not resolve (yet) passes. When a
    pharmacy is saved it does (nothing can be reached through it, and each call checks again);
    when a call is about to be made it does not.
    """
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a malformed [IPv6] literal or port
        return NO_HOST
    if not host:
        return NO_HOST
    if parts.username is not None or parts.password is not None:
        return NO_CREDENTIALS
    local = _allowed_local(host)
    if parts.scheme != "https" and not (local and parts.scheme == "http"):
        return HTTPS_ONLY
    if local:
        return None
    addresses = _resolve(host, port)
    if addresses is None:
        return None if unresolved_allowed else DOES_NOT_RESOLVE
    if not all(address_is_public(address) for address in addresses):
        return NOT_PUBLIC
    return None


def base_url_check(url: str) -> None:
    """Raise ValidationFailed (details on ``base_url``) unless ``url`` may be saved as a pharmacy's base URL."""
    problem = destination_problem(url, unresolved_allowed=True)
    if problem is not None:
        raise ValidationFailed(details={"base_url": [problem]})
