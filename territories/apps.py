from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_role_permissions(sender: Any, **kwargs: Any) -> None:
    from .services import role_permissions_sync

    role_permissions_sync()


class TerritoriesConfig(AppConfig):
    name = "territories"
    verbose_name = "Territories"

    def ready(self) -> None:
        # Deployment housekeeping, not business flow: new role permissions reach existing groups.
        post_migrate.connect(_sync_role_permissions, sender=self, dispatch_uid="territories.role_permissions_sync")
        from .signals import connect

        # Cache coherence, not business flow: cached permission maps follow every change of their rows.
        connect()
