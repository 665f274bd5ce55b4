"""The application's URLs plus the floor endpoints (``config.settings.bench`` only)."""

from django.urls import path

from config.urls import handler404, handler500
from config.urls import urlpatterns as application_urlpatterns

from .views import FloorReadView, FloorWriteView

urlpatterns = [
    path("bench/floor/write", FloorWriteView.as_view(), name="bench-floor-write"),
    path("bench/floor/read/<uuid:order_id>", FloorReadView.as_view(), name="bench-floor-read"),
    *application_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
