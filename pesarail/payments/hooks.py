"""The HTTP face of callback intake (see :mod:`pesarail.payments.callbacks`)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from pesarail.api.errors import error_body
from pesarail.payments import callbacks


@csrf_exempt
def provider_callback(request: HttpRequest, provider: str, token: str,
                      attempt: str | None = None) -> JsonResponse:
    """``POST /hooks/<provider>/<token>/[<attempt>/]``: a provider's result."""
    if request.method != "POST":
        response = JsonResponse(
            error_body(405, "Callbacks are POST only.",
                       request_id=getattr(request, "request_id", None)), status=405)
        response["Allow"] = "POST"
        return response
    inbound = callbacks.Inbound(
        provider=provider, token=token, method=request.method,
        headers=dict(request.headers), body=request.body,
        source_ip=request.META.get("REMOTE_ADDR") or None,
        attempt_hint=(attempt or "")[:40] or None,
    )
    answer = callbacks.handle(inbound)
    return JsonResponse(answer.body, status=answer.status)
