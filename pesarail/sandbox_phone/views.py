"""``/sandbox/phone/<msisdn>/``: the prompts waiting on a test number, as a phone shows
them, with Approve, Cancel, Wrong PIN and Ignore.

Every answer goes to the Daraja simulator's control API; the simulator then sends the
real STK callback to pesarail, exactly as Safaricom would. 404 unless the sandbox is
enabled (and never under the production settings).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from pesarail.common.money import Money, MoneyError
from pesarail.common.phone import PhoneError, national_format, normalize_phone, to_msisdn
from pesarail.sandbox_phone import client

#: What the person sees after answering.
ANSWERED: dict[str, str] = {
    "approve": "You entered your PIN. The payment goes through and M-Pesa sends the "
               "confirmation.",
    "cancel": "You cancelled the request. Nothing was paid.",
    "wrong_pin": "You entered a wrong PIN. M-Pesa refuses the payment.",
    "ignore": "You dismissed the request. It will time out as if the phone was unreachable.",
}

_RESULT_TEXT: dict[str, str] = {
    "completed": "Paid",
    "cancelled": "Cancelled",
    "failed": "Failed",
    "timed_out": "Timed out",
    "expired": "Expired",
}


@dataclass(frozen=True)
class Prompt:
    """One prompt, ready to render."""

    id: str
    amount: str
    business: str
    account_reference: str
    status: str
    result_desc: str
    receipt: str
    times_out_at: datetime | None

    @property
    def open(self) -> bool:
        return self.status == "open"

    @property
    def ignored(self) -> bool:
        return self.status == "ignored"

    @property
    def result_text(self) -> str:
        return _RESULT_TEXT.get(self.status, self.status.replace("_", " ").capitalize())

    @property
    def question(self) -> str:
        return f"Pay {self.amount} to {self.business}?"


def _amount(raw: Any) -> str:
    try:
        return Money.parse(str(raw), "KES", allow_zero=True).format()
    except MoneyError:
        return f"KES {raw}"


def _when(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return None


def _prompt(data: dict[str, Any]) -> Prompt:
    business = str(data.get("business_name") or data.get("account_reference") or "MERCHANT")
    return Prompt(
        id=str(data.get("checkout_request_id", "")),
        amount=_amount(data.get("amount")),
        business=business.upper(),
        account_reference=str(data.get("account_reference") or ""),
        status=str(data.get("status") or ""),
        result_desc=str(data.get("result_desc") or ""),
        receipt=str(data.get("mpesa_receipt_number") or ""),
        times_out_at=_when(data.get("auto_answer_at")),
    )


def _msisdn_or_404(raw: str) -> str:
    if not client.enabled():
        raise Http404("The sandbox is not enabled.")
    try:
        return to_msisdn(normalize_phone(raw, "KE"))
    except PhoneError:
        raise Http404("Not a phone number.") from None


def _screen_context(msisdn: str) -> dict[str, Any]:
    """The prompts on the phone, or why they cannot be shown."""
    try:
        found = [_prompt(p) for p in client.prompts(msisdn)]
        error = ""
    except client.SandboxUnavailable as exc:
        found, error = [], str(exc)
    waiting = [p for p in found if p.open or p.ignored]
    recent = [p for p in found if not (p.open or p.ignored)][:5]
    state = "|".join(f"{p.id}:{p.status}" for p in found) + "|" + error
    version = hashlib.sha256(state.encode()).hexdigest()[:16]
    return {
        "msisdn": msisdn,
        "display_number": national_format("+" + msisdn),
        "waiting": waiting,
        "recent": recent,
        "error": error,
        "version": version,
        "now": timezone.now(),
    }


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


@never_cache
@require_GET
def phone(request: HttpRequest, msisdn: str) -> HttpResponse:
    number = _msisdn_or_404(msisdn)
    context = _screen_context(number)
    return render(request, "sandbox_phone/phone.html", context,
                  status=503 if context["error"] else 200)


@never_cache
@require_GET
def screen(request: HttpRequest, msisdn: str) -> HttpResponse:
    """The phone's screen, for polling: 204 (nothing to swap) when unchanged."""
    number = _msisdn_or_404(msisdn)
    context = _screen_context(number)
    if request.GET.get("v") == context["version"]:
        return HttpResponse(status=204)
    return render(request, "sandbox_phone/phone.html#screen", context)


@never_cache
@require_POST
def answer(request: HttpRequest, msisdn: str, checkout_request_id: str) -> HttpResponse:
    number = _msisdn_or_404(msisdn)
    action = request.POST.get("action", "")
    flash = ""
    if action not in client.ACTIONS:
        flash = "Choose Approve, Cancel, Wrong PIN or Ignore."
    else:
        try:
            found = client.prompt(checkout_request_id)
            if found is None or found.get("msisdn") != number:
                flash = "This request is not on this phone any more."
            else:
                result = client.answer(checkout_request_id, action)
                if result.ok:
                    flash = ANSWERED[action]
                elif result.reason == "already_answered":
                    flash = "This request was already answered."
                else:
                    flash = "This request is not on this phone any more."
        except client.SandboxUnavailable as exc:
            flash = str(exc)
    if _is_htmx(request):
        context = {**_screen_context(number), "flash": flash}
        return render(request, "sandbox_phone/phone.html#screen", context)
    messages.info(request, flash)
    return HttpResponseRedirect(reverse("sandbox_phone:phone", args=[number]), status=303)
