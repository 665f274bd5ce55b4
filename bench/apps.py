from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Installed only by ``config.settings.bench``: the floor endpoints' table lives in bench databases alone."""

    name = "bench"
    default_auto_field = "django.db.models.BigAutoField"
