from django.urls import path

from . import views

# Mounted under /api/ beside the portal's order endpoints.
portal_urlpatterns = [
    path(
        "portal/orders/<str:order_id>/payment-link",
        views.PortalPaymentLinkView.as_view(),
        name="portal-order-payment-link",
    ),
]

urlpatterns = [
    path("create-intent", views.CreateIntentView.as_view(), name="payments-create-intent"),
    path("webhook", views.WebhookView.as_view(), name="payments-webhook"),
]
