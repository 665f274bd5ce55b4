from django.urls import path

from . import views, wizard

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("patients/", views.patients, name="patients"),
    path("patients/<uuid:pk>/", views.patient_detail, name="patient"),
    path("orders/new", wizard.order_new, name="order_new"),
    path("drafts/<uuid:pk>/discard", wizard.draft_discard, name="draft_discard"),
    path("drafts/<uuid:pk>/<str:step>/", wizard.draft_step, name="draft_step"),
    path("review/", views.review_queue, name="review_queue"),
    path("agents/", views.agent_status, name="agent_status"),
    path("agents/live", views.agent_status_live, name="agent_status_live"),
    path("orders/<uuid:pk>/", views.order_detail, name="order_detail"),
    path("orders/<uuid:pk>/status", views.order_status, name="order_status"),
    path(
        "orders/<uuid:pk>/documents/<uuid:attachment_pk>",
        views.attachment_open,
        name="order_attachment",
    ),
    path("orders/<uuid:pk>/written-order.pdf", views.written_order_download, name="written_order"),
    path("orders/<uuid:pk>/reorder", views.order_reorder, name="order_reorder"),
]
