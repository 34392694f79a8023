from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core import capabilities
from core import views as core_views

admin.site.site_header = "Segmenta back office"
admin.site.site_title = "Segmenta back office"

# Each capability declares its site and API URL modules (core/capabilities.py).
api_v1 = capabilities.api_urlpatterns()

urlpatterns = [
    *capabilities.site_urlpatterns(),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's setup script as a file (no inline script: CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", core_views.healthz, name="healthz"),
    # Links in messages (unsubscribe, preferences, tracking): no account, a signed value.
    path("m/", include("campaigns.public_urls")),
    # Surveys answered through a public or personal link: no account, a signed value.
    path("r/", include("research.public_urls")),
]

handler400 = "core.views.error_400"
handler403 = "core.views.error_403"
handler404 = "core.views.error_404"
handler500 = "core.views.error_500"
