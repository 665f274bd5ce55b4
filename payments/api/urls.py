from django.urls import path

from . import views

urlpatterns = [
    path("create-intent", views.CreateIntentView.as_view(), name="payments-create-intent"),
]
