"""Catalog endpoints under /api/v1/. ``grouped`` comes before ``<sku>`` (and is a reserved SKU)."""

from django.urls import path

from . import views

urlpatterns = [
    path("catalog/products", views.ProductListCreateView.as_view(), name="catalog-products"),
    path("catalog/products/grouped", views.ProductGroupsView.as_view(), name="catalog-product-groups"),
    path("catalog/products/<str:sku>", views.ProductDetailView.as_view(), name="catalog-product"),
    path("catalog/lots", views.LotReceiveView.as_view(), name="catalog-lots"),
    path("purchasing/reorders", views.PurchasingReordersView.as_view(), name="purchasing-reorders"),
]
