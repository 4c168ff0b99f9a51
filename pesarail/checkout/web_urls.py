"""The hosted page (mounted at ``/pay/`` by the root URLconf)."""

from django.urls import path

from pesarail.checkout import web

app_name = "checkout"

urlpatterns = [
    path("<str:session_id>/", web.page, name="page"),
    path("<str:session_id>/status/", web.status, name="status"),
    path("<str:session_id>/change/", web.change, name="change"),
    path("<str:session_id>/cancel/", web.cancel, name="cancel"),
    path("<str:session_id>/return/", web.back, name="return"),
]
