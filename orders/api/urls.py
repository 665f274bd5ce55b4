"""Order endpoints: ``v1_urlpatterns`` under /api/v1/, ``urlpatterns`` (timeline, events) under /api/."""

from django.urls import path

from . import portal, views

v1_urlpatterns = [
    path("orders", views.OrderCreateView.as_view(), name="order-create"),
    path("orders/territory/<str:territory_id>", views.OrderTerritoryListView.as_view(), name="orders-territory"),
    path("orders/<str:order_id>", views.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<str:order_id>/status", views.OrderStatusView.as_view(), name="order-status"),
    path("orders/<str:order_id>/verify", views.OrderVerifyView.as_view(), name="order-verify"),
    path("orders/<str:order_id>/complete", views.OrderCompleteView.as_view(), name="order-complete"),
    path("orders/<str:order_id>/cancel", views.OrderCancelView.as_view(), name="order-cancel"),
    path("orders/<str:order_id>/fulfillment", views.OrderFulfillmentView.as_view(), name="order-fulfillment"),
    path("fulfillment-tasks/<str:task_id>/start", views.FulfillmentTaskStartView.as_view(), name="task-start"),
    path("fulfillment-tasks/<str:task_id>/ship", views.FulfillmentTaskShipView.as_view(), name="task-ship"),
    path("fulfillment-tasks/<str:task_id>/done", views.FulfillmentTaskDoneView.as_view(), name="task-done"),
    path("work-orders", views.WorkOrderListView.as_view(), name="work-orders"),
]

urlpatterns = [
    path("portal/orders", portal.PortalOrdersView.as_view(), name="portal-orders"),
    path("portal/orders/<str:order_id>/approve", portal.PortalOrderApproveView.as_view(), name="portal-order-approve"),
    path(
        "portal/orders/<str:order_id>/attachments",
        portal.PortalOrderAttachmentsView.as_view(),
        name="portal-order-attachments",
    ),
    path("portal/compliance/check", portal.ComplianceCheckView.as_view(), name="portal-compliance-check"),
    path("orders/<str:order_id>/timeline", views.OrderTimelineView.as_view(), name="order-timeline"),
    path("orders/<str:order_id>/events", views.OrderEventCreateView.as_view(), name="order-events"),
]
