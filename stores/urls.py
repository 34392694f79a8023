from django.urls import path

from . import views

urlpatterns = [
    path("", views.store_list, name="list"),
    path("<int:pk>/", views.store_detail, name="detail"),
    path("<int:pk>/delete/", views.store_delete, name="delete"),
    path("<int:pk>/promote/", views.store_promote, name="promote"),
    path("promote/", views.region_promote, name="region_promote"),
]
