from django.urls import path

from . import views

urlpatterns = [
    path("", views.endpoint_list, name="list"),
    path("<int:pk>/", views.endpoint_detail, name="detail"),
    path("<int:pk>/test/", views.endpoint_test, name="test"),
    path("<int:pk>/switch/", views.endpoint_toggle, name="toggle"),
    path("<int:pk>/delete/", views.endpoint_delete, name="delete"),
]
