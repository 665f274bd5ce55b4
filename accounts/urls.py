from django.contrib.auth.views import LogoutView
from django.urls import include, path

from . import views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),  # POST only; back to LOGOUT_REDIRECT_URL
    path("oidc/", include("mozilla_django_oidc.urls")),
]
