from django.urls import path

from . import views

urlpatterns = [
    path("agents/status", views.AgentStatusView.as_view(), name="agents-status"),
]
