"""``manage.py check`` validates the rule files, so a bad edit fails before it can decide an order."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register

from .rulebook import RuleFileError, load_rule_sets


@register()
def rule_files_valid(app_configs: Any, **kwargs: Any) -> list[Error]:
    try:
        load_rule_sets()
    except RuleFileError as error:
        return [Error(f"Compliance rule file: {error}", id="compliance.E001")]
    return []
