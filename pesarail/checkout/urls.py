"""API routes (mounted under ``/api/v1/``)."""

from rest_framework.routers import SimpleRouter

from pesarail.checkout import views

router = SimpleRouter()
router.register("checkout-sessions", views.CheckoutSessionViewSet, basename="checkout-session")

urlpatterns = router.urls
