"""The hosted page over Django's test client, against the real Daraja simulator.

No app server here: results reach pesarail through the status page asking the provider
itself (the "late callback" path), with its thresholds set to zero. The browser tests
cover the callback path end to end.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone

from pesarail.checkout import services, web
from pesarail.checkout.models import CheckoutSession, SessionStatus
from pesarail.payments.models import IntentStatus, PaymentIntent
from pesarail.providers.mpesa_ke import RESULT_CODES
from tests.checkout.helpers import make_session
from tests.factories import Tenant
from tests.sandbox_fixtures import PHONES, DarajaSandbox

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def quick_refresh(settings: Any) -> None:
    settings.PESARAIL_CHECKOUT_REFRESH_AFTER_SECONDS = 0
    settings.PESARAIL_CHECKOUT_REFRESH_EVERY_SECONDS = 0


@pytest.fixture
def session(tenant: Tenant, daraja_account: Any, daraja_sandbox: DarajaSandbox
            ) -> CheckoutSession:
    # A person answers: the prompt must not answer itself meanwhile.
    daraja_sandbox.configure(auto_answer_seconds=60)
    return make_session(tenant)


def page_url(session: CheckoutSession, suffix: str = "") -> str:
    return f"/pay/{session.pk}/{suffix}"


def pay(client: Client, session: CheckoutSession, phone: str = "0708 374 149",
        method: str = "mpesa_ke", htmx: bool = True) -> Any:
    return client.post(page_url(session), {"method": method, "phone": phone},
                       **(HX if htmx else {}))


def pushes(sandbox: DarajaSandbox) -> int:
    return int(sandbox.stats()["pushes"])


def html(response: Any) -> str:
    return response.content.decode()


def test_page_shows_merchant_amount_method_and_phone_field(
        client: Client, session: CheckoutSession) -> None:
    response = client.get(page_url(session))
    assert response.status_code == 200
    text = html(response)
    assert "Alpha Shop" in text
    assert "KES 1,500.00" in text
    assert "Reference ORDER-1001" in text
    assert 'name="method" value="mpesa_ke" checked' in text
    assert '<label for="phone">M-Pesa phone number</label>' in text
    assert 'type="tel"' in text and 'autocomplete="tel"' in text
    assert 'aria-describedby="phone-hint phone-error"' in text
    assert "Pay KES 1,500.00" in text
    assert response["Cache-Control"].startswith("max-age=0")
    assert "no-store" in response["Cache-Control"]


def test_page_is_under_the_strict_csp_with_no_third_party_assets(
        client: Client, session: CheckoutSession) -> None:
    response = client.get(page_url(session))
    policy = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    text = html(response)
    scripts = re.findall(r"<script[^>]*>", text)
    assert len(scripts) == 2  # htmx and ours
    for tag in scripts:
        assert 'src="/static/' in tag and f'nonce="{nonce.group(1)}"' in tag
    assert re.search(r"<script[^>]*>\s*[^<\s]", text) is None  # no inline code
    assert " style=" not in text and "<style" not in text
    assert re.search(r'(src|href)="(https?:)?//', text) is None  # nothing off-site


def test_htmx_is_vendored_with_its_licence_and_served_locally(client: Client) -> None:
    for path in ("checkout/vendor/htmx.min.js", "checkout/checkout.js",
                 "checkout/checkout.css", "checkout/favicon.svg", "sandbox_phone/phone.css",
                 "sandbox_phone/phone.js"):
        assert finders.find(path), path
    licence = Path(finders.find("checkout/vendor/htmx.LICENSE.txt")).read_text()
    assert "Zero-Clause BSD" in licence
    assert "htmx.org 2." in Path(finders.find("checkout/vendor/README.txt")).read_text()


def test_unknown_session_is_a_404(client: Client) -> None:
    assert client.get("/pay/cs_doesnotexist0000000000/").status_code == 404
    assert client.get("/pay/pay_notasession/").status_code == 404
    assert client.get("/pay/cs_doesnotexist0000000000/status/").status_code == 404


@pytest.mark.parametrize("phone", ["", "12345", "0708 37414", "07083741499", "0208374149",
                                   "+1 202 555 0100", "07O8374149"])
def test_invalid_phone_is_an_inline_error_and_no_provider_call(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox,
        phone: str) -> None:
    response = pay(client, session, phone)
    assert response.status_code == 200
    text = html(response)
    assert services.PHONE_HINT in text
    assert 'aria-invalid="true"' in text
    assert "Pay KES 1,500.00" in text  # the form again, the number kept for correction
    plain = pay(client, session, phone, htmx=False)
    assert plain.status_code == 400 and services.PHONE_HINT in html(plain)
    assert pushes(daraja_sandbox) == 0
    assert not PaymentIntent.objects.exists()


def test_pay_sends_one_prompt_and_shows_the_waiting_state(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox) -> None:
    response = pay(client, session, "0708 374 149")
    text = html(response)
    assert "Check your phone and enter your M-Pesa PIN." in text
    assert "0708 374149" in text
    assert f'hx-get="/pay/{session.pk}/status/?n=1"' in text
    assert "load delay:1000ms" in text
    session.refresh_from_db()
    intent = session.payment
    assert intent is not None and intent.status == IntentStatus.PROCESSING
    assert intent.merchant_id == session.merchant_id
    assert intent.idempotency_key == f"checkout:{session.pk}:1"
    assert intent.money == session.money and intent.phone == PHONES["success"]
    assert intent.reference == "ORDER-1001"
    assert pushes(daraja_sandbox) == 1
    [prompt] = daraja_sandbox.sim.prompts("254708374149")
    assert prompt["business_name"] == "Alpha Shop" and prompt["amount"] == 1500

    # A double submit (or a reload that re-posts) sends nothing more.
    again = pay(client, session, "0708 374 149")
    assert "Check your phone" in html(again)
    other_phone = pay(client, session, "0712 345 678")
    assert "Check your phone" in html(other_phone)
    assert pushes(daraja_sandbox) == 1
    assert PaymentIntent.objects.count() == 1


def test_without_htmx_pay_redirects_to_the_page_which_refreshes_itself(
        client: Client, session: CheckoutSession) -> None:
    response = pay(client, session, htmx=False)
    assert response.status_code == 303 and response["Location"] == page_url(session)
    text = html(client.get(page_url(session)))
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in text


def test_polling_backs_off_and_keeps_going(client: Client, session: CheckoutSession) -> None:
    pay(client, session)
    assert [web.poll_delay_ms(n) for n in (0, 4, 5, 14, 15, 29, 30, 500)] == [
        1000, 1000, 2000, 2000, 3000, 3000, 5000, 5000]
    # Past a minute of polling the waiting state still polls (every 5 s).
    assert sum(web.poll_delay_ms(n) for n in range(28)) > 60_000
    response = client.get(page_url(session, "status/?n=40"), **HX)
    text = html(response)
    assert text.strip().startswith('<div id="poller"')
    assert "?n=41" in text and "load delay:5000ms" in text
    assert "HX-Retarget" not in response
    assert client.get(page_url(session, "status/?n=abc"), **HX).status_code == 200


def test_approved_prompt_turns_the_page_to_paid_and_returns_to_the_shop(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox,
        quick_refresh: None) -> None:
    pay(client, session)
    [prompt] = daraja_sandbox.sim.prompts("254708374149")
    daraja_sandbox.answer(prompt["checkout_request_id"], "approve")
    response = client.get(page_url(session, "status/?n=3"), **HX)
    assert response["HX-Retarget"] == "#panel" and response["HX-Reswap"] == "innerHTML"
    text = html(response)
    assert ">Paid</h2>" in text
    assert 'id="poller"' not in text  # polling stops
    assert f'hx-get="/pay/{session.pk}/return/"' in text
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETE and session.completed_at is not None
    assert session.payment is not None and session.payment.status == IntentStatus.SUCCEEDED
    back = client.get(page_url(session, "return/"))
    assert back.status_code == 302
    assert back["Location"] == f"https://shop.example/thanks?session_id={session.pk}"
    htmx_back = client.get(page_url(session, "return/"), **HX)
    assert htmx_back["HX-Redirect"] == f"https://shop.example/thanks?session_id={session.pk}"


def test_success_url_keeps_its_own_query(tenant: Tenant, daraja_account: Any) -> None:
    session = make_session(tenant, success_url="https://shop.example/t?order=7#top")
    session.status = SessionStatus.COMPLETE
    assert services.return_url(session) == (
        f"https://shop.example/t?order=7&session_id={session.pk}#top")


def test_cancelled_prompt_shows_the_message_and_try_again_retries_the_same_intent(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox,
        quick_refresh: None) -> None:
    pay(client, session)
    [prompt] = daraja_sandbox.sim.prompts("254708374149")
    daraja_sandbox.answer(prompt["checkout_request_id"], "cancel")
    text = html(client.get(page_url(session, "status/?n=2"), **HX))
    assert "Payment cancelled" in text
    assert RESULT_CODES["1032"].message in text
    assert ">Try again</button>" in text and "Use another number" in text
    assert 'id="poller"' not in text
    intent = PaymentIntent.objects.get()
    assert intent.status == IntentStatus.CANCELLED

    retried = client.post(page_url(session), {"method": "mpesa_ke",
                                              "phone": PHONES["success"]}, **HX)
    assert "Check your phone" in html(retried)
    intent.refresh_from_db()
    assert intent.status == IntentStatus.PROCESSING and intent.attempt_count == 2
    assert PaymentIntent.objects.count() == 1  # the same intent, a new attempt
    assert pushes(daraja_sandbox) == 2
    second = [p for p in daraja_sandbox.sim.prompts("254708374149") if p["status"] == "open"]
    daraja_sandbox.answer(second[0]["checkout_request_id"], "approve")
    assert ">Paid</h2>" in html(client.get(page_url(session, "status/?n=1"), **HX))


def test_wrong_pin_and_insufficient_funds_show_the_result_code_message(
        client: Client, tenant: Tenant, daraja_account: Any, daraja_sandbox: DarajaSandbox,
        quick_refresh: None) -> None:
    for phone, code in ((PHONES["wrong_pin"], "2001"), (PHONES["insufficient_funds"], "1")):
        session = make_session(tenant)
        pay(client, session, phone)
        intent = CheckoutSession.objects.get(pk=session.pk).payment
        assert intent is not None
        daraja_sandbox.wait_until_answered(intent.attempts.get().checkout_request_id)
        text = html(client.get(page_url(session, "status/"), **HX))
        assert "Payment failed" in text and RESULT_CODES[code].message in text
        assert ">Try again</button>" in text


def test_another_number_after_a_failure_starts_a_new_intent(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox,
        quick_refresh: None) -> None:
    daraja_sandbox.configure(auto_answer_seconds=0.3)  # the script answers
    pay(client, session, PHONES["cancelled"])
    first = CheckoutSession.objects.get(pk=session.pk).payment
    assert first is not None
    daraja_sandbox.wait_until_answered(first.attempts.get().checkout_request_id)
    client.get(page_url(session, "status/"), **HX)
    form = html(client.get(page_url(session, "change/"), **HX))
    assert "Payment cancelled." in form and 'name="phone"' in form
    pay(client, session, "0708374149")
    session.refresh_from_db()
    assert session.payment is not None and session.payment.pk != first.pk
    assert session.payment.idempotency_key == f"checkout:{session.pk}:2"
    assert session.intent_count == 2


def test_a_lost_callback_is_resolved_by_asking_the_provider_rate_limited(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox) -> None:
    daraja_sandbox.configure(lose_callbacks=True)
    pay(client, session)
    [prompt] = daraja_sandbox.sim.prompts("254708374149")
    daraja_sandbox.answer(prompt["checkout_request_id"], "approve")
    queries = daraja_sandbox.stats()["queries"]
    # Fresh prompt: the page does not ask yet.
    assert "poller" in html(client.get(page_url(session, "status/"), **HX))
    assert daraja_sandbox.stats()["queries"] == queries
    with time_machine.travel(timezone.now() + timedelta(seconds=21)):
        text = html(client.get(page_url(session, "status/"), **HX))
    assert ">Paid</h2>" in text
    assert daraja_sandbox.stats()["queries"] == queries + 1


def test_refresh_is_rate_limited_across_pollers(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox) -> None:
    pay(client, session)
    session = services.sync(session)
    queries = daraja_sandbox.stats()["queries"]
    later = timezone.now() + timedelta(seconds=25)
    with time_machine.travel(later, tick=False):
        assert services.refresh_if_stale(session) is True
        assert services.refresh_if_stale(services.sync(session)) is False  # asked just now
    with time_machine.travel(later + timedelta(seconds=11), tick=False):
        assert services.refresh_if_stale(services.sync(session)) is True
    assert daraja_sandbox.stats()["queries"] == queries + 2
    assert services.sync(session).payment.status == IntentStatus.PROCESSING  # type: ignore[union-attr]


def test_expired_session_says_so_and_cannot_be_paid(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox) -> None:
    CheckoutSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    text = html(client.get(page_url(session)))
    assert "This payment link has expired" in text
    assert 'name="phone"' not in text
    response = pay(client, session)
    assert "This payment link has expired" in html(response)
    assert "Check your phone" not in html(response)
    assert pushes(daraja_sandbox) == 0
    assert CheckoutSession.objects.get(pk=session.pk).status == SessionStatus.EXPIRED
    back = client.get(page_url(session, "return/"))
    assert back["Location"] == f"https://shop.example/cart?session_id={session.pk}"


def test_a_prompt_in_flight_at_expiry_still_completes(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox,
        quick_refresh: None) -> None:
    pay(client, session)
    CheckoutSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1))
    assert "Check your phone" in html(client.get(page_url(session)))
    assert services.expire_due() == 0
    [prompt] = daraja_sandbox.sim.prompts("254708374149")
    daraja_sandbox.answer(prompt["checkout_request_id"], "approve")
    assert ">Paid</h2>" in html(client.get(page_url(session, "status/"), **HX))


def test_a_finished_session_cannot_be_paid_again(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox,
        quick_refresh: None) -> None:
    pay(client, session)
    [prompt] = daraja_sandbox.sim.prompts("254708374149")
    daraja_sandbox.answer(prompt["checkout_request_id"], "approve")
    client.get(page_url(session, "status/"), **HX)
    assert CheckoutSession.objects.get(pk=session.pk).status == SessionStatus.COMPLETE
    response = pay(client, session, "0712 345 678")
    assert ">Paid</h2>" in html(response)
    assert pushes(daraja_sandbox) == 1 and PaymentIntent.objects.count() == 1
    with pytest.raises(services.SessionClosed):
        services.pay(session, provider="mpesa_ke", phone="0712345678")
    assert client.get(page_url(session, "change/")).status_code == 200
    assert 'name="phone"' not in html(client.get(page_url(session, "change/")))


def test_another_merchants_account_is_never_used(
        client: Client, tenant: Tenant, other_tenant: Tenant,
        make_daraja_account: Any, daraja_sandbox: DarajaSandbox) -> None:
    make_daraja_account(merchant=other_tenant.merchant)  # only the other merchant has M-Pesa
    session = make_session(tenant)
    text = html(client.get(page_url(session)))
    assert "Not available right now" in text
    response = pay(client, session)
    assert "M-Pesa is not available for this shop right now." in html(response)
    assert pushes(daraja_sandbox) == 0 and not PaymentIntent.objects.exists()


def test_customer_can_cancel_and_go_back(client: Client, session: CheckoutSession) -> None:
    response = client.post(page_url(session, "cancel/"), **HX)
    assert response["HX-Redirect"] == f"https://shop.example/cart?session_id={session.pk}"
    assert CheckoutSession.objects.get(pk=session.pk).status == SessionStatus.CANCELLED
    text = html(client.get(page_url(session)))
    assert "Payment cancelled" in text and 'name="phone"' not in text


def test_cancel_is_refused_while_a_prompt_is_open(
        client: Client, session: CheckoutSession) -> None:
    pay(client, session)
    response = client.post(page_url(session, "cancel/"), **HX)
    assert "Answer or cancel the M-Pesa prompt on your phone first." in html(response)
    assert CheckoutSession.objects.get(pk=session.pk).status == SessionStatus.OPEN


def test_forms_need_csrf(session: CheckoutSession) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(page_url(session), {"method": "mpesa_ke",
                                           "phone": "0708374149"}).status_code == 403
    page = strict.get(page_url(session))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html(page))
    assert token is not None


def test_sandbox_badge_and_phone_link_only_with_the_sandbox(
        client: Client, session: CheckoutSession, settings: Any) -> None:
    assert "Sandbox" in html(client.get(page_url(session)))
    pay(client, session)
    assert 'href="/sandbox/phone/254708374149/"' in html(client.get(page_url(session)))
    settings.PESARAIL_SANDBOX_ENABLED = False
    text = html(client.get(page_url(session)))
    assert "Sandbox" not in text and "/sandbox/phone/" not in text


def test_late_success_on_an_older_intent_completes_the_session(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox,
        quick_refresh: None) -> None:
    daraja_sandbox.configure(auto_answer_seconds=0.3)  # the script answers
    pay(client, session, PHONES["cancelled"])
    old = CheckoutSession.objects.get(pk=session.pk).payment
    assert old is not None
    daraja_sandbox.wait_until_answered(old.attempts.get().checkout_request_id)
    client.get(page_url(session, "status/"), **HX)
    pay(client, session, "0712345678")  # another number: a second intent
    PaymentIntent.objects.filter(pk=old.pk).update(status=IntentStatus.SUCCEEDED)
    assert services.sync(session).status == SessionStatus.COMPLETE
    assert services.sync(session).payment_id == old.pk



def test_a_link_cannot_send_prompt_after_prompt(
        client: Client, session: CheckoutSession, daraja_sandbox: DarajaSandbox,
        quick_refresh: None, settings: Any) -> None:
    settings.PESARAIL_CHECKOUT_MAX_ATTEMPTS = 2
    for _ in range(2):
        pay(client, session)
        [prompt] = [p for p in daraja_sandbox.sim.prompts("254708374149")
                    if p["status"] == "open"]
        daraja_sandbox.answer(prompt["checkout_request_id"], "cancel")
        assert "Payment cancelled" in html(client.get(page_url(session, "status/"), **HX))
    third = html(pay(client, session, "0712 345 678"))
    assert "Too many tries on this payment link." in third
    assert pushes(daraja_sandbox) == 2


def test_poll_numbers_are_read_strictly(client: Client, session: CheckoutSession) -> None:
    pay(client, session)
    for raw in ("²", "9" * 5000, "-1", ""):
        response = client.get(page_url(session, "status/"), {"n": raw}, **HX)
        assert response.status_code == 200
        assert "?n=1" in html(response)


def test_a_status_poll_decrypts_no_credentials(
        client: Client, session: CheckoutSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page polls every second or so; the provider account's credentials are read
    (and decrypted) only when the provider is called, never to render the status."""
    from pesarail.providers import crypto

    pay(client, session)
    calls: list[int] = []
    real = crypto.decrypt

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(crypto, "decrypt", counting)
    response = client.get(page_url(session, "status/?n=1"), **HX)
    assert response.status_code == 200 and 'id="poller"' in html(response)
    assert calls == []
