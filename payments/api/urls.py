from django.urls import path

from . import views

urlpatterns = [
    path("create-intent", views.CreateIntentView.as_view(), name="payments-create-intent"),
    path("webhook", views.WebhookView.as_view(), name="payments-webhook"),
]
