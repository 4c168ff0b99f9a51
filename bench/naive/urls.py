from django.urls import path

from bench.naive import views

urlpatterns = [
    path("naive/pay", views.pay),
    path("naive/callback", views.callback),
]
