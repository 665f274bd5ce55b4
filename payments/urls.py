from django.urls import path

from . import views

urlpatterns = [
    path("sandbox/<str:session_id>", views.sandbox_checkout, name="payments-sandbox-checkout"),
    path("<str:token>", views.pay, name="payments-pay"),
]
