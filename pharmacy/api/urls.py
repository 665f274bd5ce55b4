from django.urls import path

from . import views

# Under /api/v1/ beside the order endpoints.
urlpatterns = [
    path("orders/<str:order_id>/fhir", views.OrderFHIRView.as_view(), name="order-fhir"),
    path("pharmacies", views.PharmacyCreateView.as_view(), name="pharmacy-create"),
    path("pharmacies/<str:pharmacy_id>/callback", views.PharmacyCallbackView.as_view(), name="pharmacy-callback"),
]

# Under /api/ beside the portal's order endpoints.
portal_urlpatterns = [
    path("portal/orders/<str:order_id>/refills", views.PortalRefillView.as_view(), name="portal-order-refills"),
]
