"""``{% load money %}``: ``{{ cents|money:currency }}`` shows integer cents as an amount ("$1,234.50")."""

from __future__ import annotations

from django import template

register = template.Library()

_SYMBOLS = {"usd": "$"}


@register.filter
def money(cents: int | None, currency: str = "usd") -> str:
    if cents is None:
        return ""
    amount = f"{cents / 100:,.2f}"
    symbol = _SYMBOLS.get((currency or "").lower())
    return f"{symbol}{amount}" if symbol else f"{amount} {(currency or '').upper()}"
