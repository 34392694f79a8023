from django.urls import path

from . import views

app_name = "customers"

urlpatterns = [
    path("", views.customer_list, name="list"),
    path("export.csv", views.customer_export_csv, name="export_csv"),
    path("<int:pk>/", views.customer_detail, name="detail"),
    path("<int:pk>/edit/", views.customer_edit, name="edit"),
    path("<int:pk>/export/", views.customer_export_json, name="export"),
    path("<int:pk>/erase/", views.customer_erase, name="erase"),
    path("orders/<int:pk>/", views.order_detail, name="order"),
    path("orders/<int:pk>/edit/", views.order_edit, name="order_edit"),
    path("orders/<int:pk>/delete/", views.order_delete, name="order_delete"),
    path("products/", views.product_list, name="products"),
    path("products/<int:pk>/", views.product_detail, name="product"),
    path("products/<int:pk>/flags/", views.product_flags, name="product_flags"),
    path("imports/", views.import_list, name="imports"),
    path("imports/new/", views.import_new, name="import_new"),
    path("imports/<int:pk>/", views.import_detail, name="import_detail"),
    path("imports/<int:pk>/map/", views.import_map, name="import_map"),
    path("imports/<int:pk>/rejected.csv", views.import_errors_csv, name="import_errors"),
    path("privacy/", views.privacy, name="privacy"),
    path("privacy/export/", views.org_export, name="org_export"),
    path("privacy/exports/<int:pk>/", views.org_export_download, name="org_export_download"),
    path("privacy/delete/", views.org_delete, name="org_delete"),
]
