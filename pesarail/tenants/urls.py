from django.urls import path
from rest_framework.routers import SimpleRouter

from pesarail.tenants import views

router = SimpleRouter()
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")

urlpatterns = [
    path("merchants/me/", views.MerchantMeView.as_view(), name="merchant-me"),
    path("auth/token/", views.CustomerTokenView.as_view(), name="auth-token"),
    path("auth/token/revoke/", views.CustomerTokenRevokeView.as_view(), name="auth-token-revoke"),
    *router.urls,
]
