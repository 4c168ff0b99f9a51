from rest_framework.routers import SimpleRouter

from pesarail.providers import views

router = SimpleRouter()
router.register("provider-accounts", views.ProviderAccountViewSet, basename="provider-account")

urlpatterns = [*router.urls]
