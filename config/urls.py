from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.api.urls import urlpatterns as accounts_v1
from agents.api.urls import urlpatterns as agents_api
from catalog.api.urls import urlpatterns as catalog_v1
from orders import messaging_views
from orders.api.urls import urlpatterns as orders_api
from orders.api.urls import v1_urlpatterns as orders_v1
from patients.api.urls import urlpatterns as patients_v1
from payments.api.urls import portal_urlpatterns as payments_portal
from pharmacy.api.urls import portal_urlpatterns as pharmacy_portal
from pharmacy.api.urls import urlpatterns as pharmacy_v1

api_v1 = [*accounts_v1, *patients_v1, *orders_v1, *catalog_v1, *pharmacy_v1]

urlpatterns = [
    # The site root is the portal (which sends anyone not signed in to the sign-in page).
    path("", RedirectView.as_view(pattern_name="portal:home", permanent=False), name="site-root"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("portal/", include("orders.portal.urls")),
    path("api/v1/", include(api_v1)),
    path("api/", include([*orders_api, *payments_portal, *pharmacy_portal, *agents_api])),
    path("payments/", include("payments.api.urls")),
    path("pay/", include("payments.urls")),
    path("messages/unsubscribe/<str:token>", messaging_views.unsubscribe, name="message-unsubscribe"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI with its start-up script as a file of its own (?script): no inline script for the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("core.urls")),
]

handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
