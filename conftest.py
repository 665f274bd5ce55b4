"""Suite-wide test set-up: which real services this run has.

Tests marked ``postgres`` or ``redis`` need that server. When it does not answer they are
skipped with the reason shown — unless ``REQUIRE_SERVICES=1`` (CI), which makes a missing
service fail the run instead.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.conf import settings

from tests.mutation_databases import slot_count, use_own_database

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    missing = [name for name, up in settings.SERVICES.items() if not up]
    if missing and REQUIRE_SERVICES:
        raise pytest.UsageError(f"REQUIRE_SERVICES=1 but these services do not answer: {', '.join(missing)}")


def pytest_report_header(config: pytest.Config) -> str:
    services = ", ".join(f"{name}={'yes' if up else 'NO'}" for name, up in settings.SERVICES.items())
    return f"services: {services} (REQUIRE_SERVICES={'1' if REQUIRE_SERVICES else '0'})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for service in ("postgres", "redis"):
            if item.get_closest_marker(service) and not settings.SERVICES[service]:
                item.add_marker(pytest.mark.skip(reason=f"needs {service}, which does not answer here"))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Under ``make mutate``, each concurrent test session uses a copy of the test database of its own
    (tests.mutation_databases); otherwise pytest-django's own suffixes only."""
    use_own_database(settings.DATABASES)


if slot_count():

    @pytest.fixture(scope="session")
    def django_db_setup(django_db_modify_db_settings: None, django_db_blocker: Any) -> None:
        """Under ``make mutate`` the test databases exist, migrated (scripts/mutate.py copies them),
        so a session only points its connections at its copies: migrating again (even to find
        nothing to do) and its post-migrate signals cost seconds per mutant."""
        from django.db import connections

        with django_db_blocker.unblock():
            for connection in connections.all(initialized_only=True):
                connection.close()
            for alias in connections:
                connections[alias].settings_dict["NAME"] = connections[alias].settings_dict["TEST"]["NAME"]
