from django.urls import path

from .views import PatientListCreateView, ProviderListView

urlpatterns = [
    path("patients", PatientListCreateView.as_view(), name="patients"),
    path("providers", ProviderListView.as_view(), name="providers"),
]
