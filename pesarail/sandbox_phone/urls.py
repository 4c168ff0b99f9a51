"""Mounted at ``/sandbox/phone/`` by the root URLconf (the views 404 unless enabled)."""

from django.urls import path

from pesarail.sandbox_phone import views

app_name = "sandbox_phone"

urlpatterns = [
    path("<str:msisdn>/", views.phone, name="phone"),
    path("<str:msisdn>/screen/", views.screen, name="screen"),
    path("<str:msisdn>/prompts/<str:checkout_request_id>/", views.answer, name="answer"),
]
