"""The hosted checkout page, ``/pay/<session id>/``.

Public (no API key): the unguessable session id is the capability. Forms are plain HTML
posts with Django's CSRF token, enhanced by htmx (vendored, no inline script) so the
page works without JavaScript too (a ``<meta refresh>`` then replaces polling).

* ``GET  /pay/<id>/``         the page in its current state
* ``POST /pay/<id>/``         pay (method + phone): start the payment or try again
* ``GET  /pay/<id>/status/``  htmx polling: the poller again while waiting (with a longer
                              delay each time), the new panel once the state changes
* ``GET  /pay/<id>/change/``  the form again, to use another number
* ``POST /pay/<id>/cancel/``  give up and go back to the merchant
* ``GET  /pay/<id>/return/``  redirect to the success URL (paid) or the cancel URL
"""

from __future__ import annotations

from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pesarail.checkout import services
from pesarail.checkout.models import CheckoutSession, SessionStatus
from pesarail.common.errors import ApplicationError, ValidationFailed
from pesarail.common.phone import PhoneError, national_format
from pesarail.providers.models import ProviderAccount
from pesarail.sandbox_phone import client as sandbox_phone

PAGE = "checkout/page.html"

#: Poll delays: quick at first, then slower, and on for as long as the prompt is open.
_POLL_STEPS: tuple[tuple[int, int], ...] = ((5, 1000), (15, 2000), (30, 3000))
_POLL_MAX_MS = 5000
_POLL_MAX_N = 100_000
#: How long "Paid" stays on screen before the customer is sent back to the merchant.
REDIRECT_DELAY_MS = 2500


def poll_delay_ms(n: int) -> int:
    """The delay before poll number ``n`` (0-based): 1 s, then 2 s, 3 s, and 5 s from
    about a minute on. Polling never gives up while the payment is open."""
    for limit, delay in _POLL_STEPS:
        if n < limit:
            return delay
    return _POLL_MAX_MS


def _load(session_id: str) -> CheckoutSession:
    if not session_id.startswith("cs_") or len(session_id) > 32:
        raise Http404("No such checkout session.")
    try:  # sync reads the session (once) and brings its status up to date
        return services.sync(CheckoutSession(pk=session_id))
    except CheckoutSession.DoesNotExist:
        raise Http404("No such checkout session.") from None


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _phone_value(session: CheckoutSession) -> str:
    if not session.last_phone:
        return ""
    try:
        return national_format(session.last_phone)
    except PhoneError:
        return ""


def _context(request: HttpRequest, session: CheckoutSession, *, show_form: bool = False,
             errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
             n: int = 0) -> dict[str, Any]:
    state = services.page_state(session)
    methods = services.available_methods(session)
    values = values or {}
    chosen = values.get("method") or next(
        (m.code for m in methods if m.available), methods[0].code if methods else "")
    if show_form and not state.terminal and state.name != "waiting":
        panel = "form"
    elif state.name == "choose":
        panel = "form"
    else:
        panel = state.name
    sandbox, phone_url = _sandbox(session, chosen, panel)
    return {
        "sandbox": sandbox,
        "sandbox_phone_url": phone_url,
        "session": session,
        "merchant_name": session.merchant.name,
        "amount": session.money.format(),
        "state": state,
        "panel": panel,
        "methods": methods,
        "chosen_method": chosen,
        "phone_value": values.get("phone", _phone_value(session)),
        "errors": errors or {},
        "poll_n": n,
        "poll_delay_ms": poll_delay_ms(n),
        "redirect_delay_ms": REDIRECT_DELAY_MS,
        "retry_method": session.payment.provider if session.payment else chosen,
        "retry_phone": session.payment.phone if session.payment else "",
    }


def _sandbox(session: CheckoutSession, chosen: str, panel: str) -> tuple[bool, str]:
    """Whether this payment runs against a sandbox (shown on the page), and the simulated
    phone's URL while a prompt is waiting."""
    if not sandbox_phone.enabled():
        return False, ""
    intent = session.payment
    if intent is not None:
        environment = intent.provider_account.environment
    else:
        account = ProviderAccount.objects.filter(
            merchant_id=session.merchant_id, provider=chosen, is_default=True,
            is_active=True).only("environment").first()
        environment = account.environment if account else ""
    if environment == "production" or not environment:
        return False, ""
    url = ""
    if intent is not None and panel == "waiting":
        url = reverse("sandbox_phone:phone", args=[intent.phone.lstrip("+")])
    return True, url


def _panel(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    return render(request, f"{PAGE}#panel", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def page(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _load(session_id)
    if request.method == "POST":
        return _pay(request, session)
    if services.refresh_if_stale(session):
        session = services.sync(session)
    return render(request, PAGE, _context(request, session))


_FIELD_FOR = {"phone_number": "phone", "method": "method"}


def _pay(request: HttpRequest, session: CheckoutSession) -> HttpResponse:
    values = {"method": request.POST.get("method", "")[:32],
              "phone": request.POST.get("phone", "")[:40]}
    errors: dict[str, str] = {}
    try:
        session = services.pay(session, provider=values["method"], phone=values["phone"])
    except services.SessionClosed:
        session = services.sync(session)
    except ValidationFailed as exc:
        for field, messages in exc.fields.items():
            errors[_FIELD_FOR.get(field, "general")] = messages[0] if messages else exc.message
        if not errors:
            errors["general"] = exc.message
    except ApplicationError as exc:
        errors["general"] = exc.message
    if errors:
        session = services.sync(session)
        context = _context(request, session, show_form=True, errors=errors, values=values)
        if _is_htmx(request):
            return _panel(request, context)
        return render(request, PAGE, context, status=400)
    if _is_htmx(request):
        return _panel(request, _context(request, session))
    return HttpResponseRedirect(reverse("checkout:page", args=[session.pk]), status=303)


@never_cache
@require_GET
def status(request: HttpRequest, session_id: str) -> HttpResponse:
    """Polled by the waiting state. Also the moment to ask the provider ourselves when
    the callback is late (rate limited in :func:`services.refresh_if_stale`)."""
    session = _load(session_id)
    if services.refresh_if_stale(session):
        session = services.sync(session)
    raw = request.GET.get("n", "0")
    n = min(int(raw), _POLL_MAX_N) if raw.isascii() and raw.isdigit() and len(raw) < 7 else 0
    context = _context(request, session, n=n)
    if context["panel"] == "waiting":
        return render(request, f"{PAGE}#poller", context)
    response = _panel(request, context)
    response["HX-Retarget"] = "#panel"
    response["HX-Reswap"] = "innerHTML"
    return response


@never_cache
@require_GET
def change(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _load(session_id)
    context = _context(request, session, show_form=True)
    if _is_htmx(request):
        return _panel(request, context)
    return render(request, PAGE, context)


@never_cache
@require_POST
def cancel(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _load(session_id)
    try:
        session = services.cancel_session(session)
    except ApplicationError as exc:
        context = _context(request, services.sync(session), errors={"general": exc.message})
        if _is_htmx(request):
            return _panel(request, context)
        return render(request, PAGE, context, status=409)
    if _is_htmx(request):
        # A script navigation, not a form redirect (CSP form-action allows only 'self').
        response = HttpResponse(status=200)
        response["HX-Redirect"] = services.return_url(session)
        return response
    return HttpResponseRedirect(reverse("checkout:page", args=[session.pk]), status=303)


@never_cache
@require_GET
def back(request: HttpRequest, session_id: str) -> HttpResponse:
    """Back to the merchant: the success URL once paid, else the cancel URL (an open
    session just shows its page again)."""
    session = _load(session_id)
    if session.status == SessionStatus.OPEN:
        return HttpResponseRedirect(reverse("checkout:page", args=[session.pk]))
    url = services.return_url(session)
    if _is_htmx(request):
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)
