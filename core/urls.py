from django.urls import path

from . import health, metrics, views

urlpatterns = [
    path("healthz", views.health, name="health"),
    # Answered by core.middleware.InfrastructureEndpointsMiddleware before routing; named here so
    # they can be reversed (and still answer if that middleware is left out).
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics, name="metrics"),
]
