from django.urls import path
from rest_framework.routers import SimpleRouter

from pesarail.wallets import views

router = SimpleRouter()
router.register("wallets", views.WalletViewSet, basename="wallet")

urlpatterns = [
    path("transfers/", views.TransferView.as_view(), name="transfer-create"),
    *router.urls,
]
