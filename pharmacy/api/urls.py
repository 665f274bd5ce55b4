from django.urls import path

from . import views

# Under /api/v1/ beside the order endpoints.
urlpatterns = [
    path("orders/<str:order_id>/fhir", views.OrderFHIRView.as_view(), name="order-fhir"),
]
