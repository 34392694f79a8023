from rest_framework.routers import DefaultRouter

from .views import CustomerViewSet, EventViewSet, ImportViewSet, OrderViewSet, ProductViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("customers", CustomerViewSet, basename="customer")
router.register("products", ProductViewSet, basename="product")
router.register("orders", OrderViewSet, basename="order")
router.register("events", EventViewSet, basename="event")
router.register("imports", ImportViewSet, basename="import")

urlpatterns = router.urls
