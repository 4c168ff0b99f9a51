from django.urls import path
from rest_framework.routers import SimpleRouter

from pesarail.payments import views

router = SimpleRouter()
router.register("payments", views.PaymentViewSet, basename="payment")

urlpatterns = [
    path("wallets/<pk>/top-up/", views.WalletTopUpView.as_view(), name="wallet-top-up"),
    *router.urls,
]
