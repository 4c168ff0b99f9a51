"""The hosted checkout and the sandbox phone in real headless Chromium.

Debian's ``chromium`` drives the tests (Playwright never downloads a browser). pesarail
is served on a loopback port, the Daraja simulator on another; the simulator's callbacks
reach pesarail over HTTP exactly as Safaricom's would. A person's part (approving the
prompt) is played on the sandbox phone page in a second tab.

Every test fails on a console error, a page error or a CSP violation. Screenshots of each
state, at phone and desktop widths, go to ``test-artifacts/screenshots/`` (gitignored;
``PESARAIL_TEST_ARTIFACTS`` moves it).

Without ``chromium`` these tests fail under CI (``CI=true``) and are skipped elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from pesarail.checkout import services
from pesarail.checkout.models import CheckoutSession, SessionStatus
from pesarail.payments.models import CallbackRecord, CallbackStatus, PaymentIntent
from pesarail.providers.mpesa_ke import RESULT_CODES
from tests.checkout.conftest import CheckoutServer
from tests.checkout.helpers import make_session
from tests.factories import Tenant
from tests.sandbox_fixtures import DarajaSandbox

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
SHOP = "https://shop.example"
SCREENSHOTS = Path(os.environ.get("PESARAIL_TEST_ARTIFACTS")
                   or Path(__file__).resolve().parents[2] / "test-artifacts") / "screenshots"
TIMEOUT_MS = 15_000

pytestmark = pytest.mark.django_db(transaction=True)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    message = ("Debian's chromium is not on PATH; the browser tests need it "
               "(install it with: apt-get install -y chromium; `make test` does this).")
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    manager = playwright_sync.sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=executable, headless=True,
                                           args=CHROMIUM_ARGS)
    except Exception:
        manager.stop()
        raise
    try:
        yield chromium
    finally:
        chromium.close()
        manager.stop()


@dataclass
class Tab:
    """A page plus everything it reported: console errors, page errors, CSP violations
    and the requests it made."""

    page: Any
    problems: list[str] = field(default_factory=list)
    requests: list[tuple[float, str, str]] = field(default_factory=list)

    def status_polls(self) -> int:
        return sum(1 for _, method, url in self.requests if "/status/" in url)

    def posts_to(self, fragment: str) -> int:
        return sum(1 for _, method, url in self.requests if method == "POST" and fragment in url)


# Runs in every document before its own scripts, outside the page's CSP.
_CSP_LISTENER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


@dataclass
class Shop:
    server: CheckoutServer
    sandbox: DarajaSandbox
    tenant: Tenant
    context: Any
    tabs: list[Tab] = field(default_factory=list)

    def session(self, **overrides: Any) -> CheckoutSession:
        with self.server.db():
            return make_session(self.tenant, success_url=f"{SHOP}/thanks",
                                cancel_url=f"{SHOP}/cart", **overrides)

    def url(self, session: CheckoutSession) -> str:
        return f"{self.server.url}/pay/{session.pk}/"

    def open(self, url: str) -> Tab:
        page = self.context.new_page()
        tab = Tab(page)
        page.on("console", lambda m: tab.problems.append(f"console {m.type}: {m.text}")
                if m.type in {"error", "warning"} else None)
        page.on("pageerror", lambda e: tab.problems.append(f"page error: {e}"))
        page.on("request", lambda r: tab.requests.append((time.monotonic(), r.method, r.url)))
        self.tabs.append(tab)
        page.goto(url)
        return tab

    def reload(self, obj: Any) -> Any:
        with self.server.db():
            obj.refresh_from_db()
        return obj

    def check_clean(self) -> None:
        for tab in self.tabs:
            if tab.page.is_closed():
                continue
            try:
                csp = tab.page.evaluate("window.__csp || []")
            except Exception:  # navigated off-site or closing: its events were recorded
                csp = []
            assert not csp, f"CSP violations: {csp}"
            assert not tab.problems, tab.problems


@pytest.fixture
def shop(browser: Any, checkout_server: CheckoutServer, daraja_sandbox: DarajaSandbox,
         sandbox_url: str, tenant: Tenant, make_daraja_account: Any) -> Iterator[Shop]:
    daraja_sandbox.configure(auto_answer_seconds=120)  # the person on the phone answers
    with checkout_server.db():
        make_daraja_account()
    context = browser.new_context(viewport=PHONE, service_workers="block")
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(_CSP_LISTENER)
    # The merchant's shop: answered here, nothing leaves the machine.
    context.route(f"{SHOP}/**", lambda route: route.fulfill(
        status=200, content_type="text/html",
        body="<!doctype html><title>Alpha Shop</title><h1>Thanks from Alpha Shop</h1>"))
    shop = Shop(server=checkout_server, sandbox=daraja_sandbox, tenant=tenant,
                context=context)
    try:
        yield shop
        shop.check_clean()
    finally:
        context.close()


def snap(tab: Tab, name: str) -> None:
    """Screenshots of the current state at phone and desktop widths."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = tab.page
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(PHONE)


def expect(locator: Any) -> Any:
    return playwright_sync.expect(locator)


def answer_on_phone(shop: Shop, button: str, shot: str | None = None) -> Tab:
    """Play the customer: open the sandbox phone in a second tab and press ``button``."""
    phone = shop.open(f"{shop.server.url}/sandbox/phone/254708374149/")
    expect(phone.page.get_by_text("Pay KES 1,500.00 to ALPHA SHOP?")).to_be_visible()
    expect(phone.page.get_by_text("Enter M-Pesa PIN")).to_be_visible()
    if shot:
        snap(phone, shot)
    phone.page.get_by_role("button", name=button, exact=True).click()
    expect(phone.page.get_by_role("status")).to_be_visible()
    return phone


def start_payment(shop: Shop, session: CheckoutSession, shot_prefix: str) -> Tab:
    tab = shop.open(shop.url(session))
    page = tab.page
    expect(page.get_by_text("Alpha Shop", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay KES 1,500.00")
    expect(page.get_by_role("radio", name=re.compile("M-Pesa"))).to_be_checked()
    snap(tab, f"{shot_prefix}-1-form")
    page.get_by_label("M-Pesa phone number").fill("0708 374 149")
    page.get_by_role("button", name="Pay KES 1,500.00").click()
    expect(page.get_by_text("Check your phone and enter your M-Pesa PIN.")).to_be_visible()
    snap(tab, f"{shot_prefix}-2-waiting")
    return tab


def test_pay_approve_on_the_sandbox_phone_see_paid_and_return(shop: Shop) -> None:
    session = shop.session()
    tab = start_payment(shop, session, "paid")
    page = tab.page
    held: list[Any] = []
    page.route("**/return/", lambda route: held.append(route))  # hold the redirect

    answer_on_phone(shop, "Approve", shot="paid-3-sandbox-phone")
    page.bring_to_front()
    expect(page.get_by_role("heading", name="Paid")).to_be_visible()
    expect(page.get_by_text("Thank you. Your payment was received.")).to_be_visible()
    snap(tab, "paid-4-paid")

    # Polling stopped at "Paid": no status request after it.
    polls = tab.status_polls()
    page.wait_for_timeout(2500)
    assert tab.status_polls() == polls

    deadline = time.monotonic() + 10
    while not held:
        assert time.monotonic() < deadline, "the page never asked to go back to the shop"
        page.wait_for_timeout(100)
    held[0].continue_()
    page.wait_for_url(f"{SHOP}/thanks?session_id={session.pk}")
    expect(page.get_by_role("heading")).to_have_text("Thanks from Alpha Shop")

    session = shop.reload(session)
    assert session.status == SessionStatus.COMPLETE
    with shop.server.db():
        intent = PaymentIntent.objects.get(pk=session.payment_id)
        assert intent.status == "succeeded" and intent.provider_receipt
        # Paid by the simulator's real callback, not by asking the provider.
        assert CallbackRecord.objects.filter(
            status=CallbackStatus.APPLIED,
            checkout_request_id=intent.attempts.get().checkout_request_id).exists()


def test_cancel_shows_the_message_and_try_again_works(shop: Shop) -> None:
    session = shop.session()
    tab = start_payment(shop, session, "cancel")
    page = tab.page
    answer_on_phone(shop, "Cancel")
    page.bring_to_front()
    expect(page.get_by_role("heading", name="Payment cancelled")).to_be_visible()
    expect(page.get_by_text(RESULT_CODES["1032"].message)).to_be_visible()
    expect(page.get_by_role("heading", name="Payment cancelled")).to_be_focused()
    snap(tab, "cancel-3-cancelled")

    polls = tab.status_polls()
    page.wait_for_timeout(3000)
    assert tab.status_polls() == polls, "polling went on after the payment was cancelled"

    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_text("Check your phone and enter your M-Pesa PIN.")).to_be_visible()
    snap(tab, "cancel-4-try-again-waiting")
    answer_on_phone(shop, "Approve")
    page.bring_to_front()
    expect(page.get_by_role("heading", name="Paid")).to_be_visible()
    page.wait_for_url(f"{SHOP}/thanks?session_id={session.pk}")

    with shop.server.db():
        intent = PaymentIntent.objects.get()  # one intent ...
        assert intent.attempt_count == 2  # ... two attempts
        assert intent.status == "succeeded"


def test_expired_session_says_so_and_cannot_be_paid(shop: Shop) -> None:
    session = shop.session()
    with shop.server.db():
        CheckoutSession.objects.filter(pk=session.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1))
    tab = shop.open(shop.url(session))
    page = tab.page
    expect(page.get_by_role("heading", name="This payment link has expired")).to_be_visible()
    expect(page.get_by_label("M-Pesa phone number")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Pay"))).to_have_count(0)
    snap(tab, "expired")
    page.get_by_role("link", name="Return to Alpha Shop").click()
    page.wait_for_url(f"{SHOP}/cart?session_id={session.pk}")
    assert shop.sandbox.stats()["pushes"] == 0


def test_invalid_phone_is_flagged_instantly_and_never_sent(shop: Shop) -> None:
    session = shop.session()
    tab = shop.open(shop.url(session))
    page = tab.page
    field_ = page.get_by_label("M-Pesa phone number")
    field_.fill("0808 123")
    expect(page.locator("#phone-error")).to_have_text(re.compile("start with 07 or 01"))
    expect(field_).to_have_attribute("aria-invalid", "true")
    field_.fill("0712 34")
    page.get_by_role("button", name="Pay KES 1,500.00").click()
    expect(page.locator("#phone-error")).to_have_text(re.compile("too short"))
    expect(field_).to_be_focused()
    snap(tab, "invalid-phone")
    assert tab.posts_to(f"/pay/{session.pk}/") == 0
    field_.fill("0712 345 678")
    expect(page.locator("#phone-error")).to_have_text("")
    expect(field_).not_to_have_attribute("aria-invalid", "true")
    assert shop.sandbox.stats()["pushes"] == 0


def test_keyboard_only_with_labels_and_focus_order(shop: Shop) -> None:
    session = shop.session()
    tab = shop.open(shop.url(session))
    page = tab.page
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate(
            "(() => { const e = document.activeElement;"
            " return (e.labels && e.labels[0] ? e.labels[0].innerText : e.innerText)"
            ".replace(/\\s+/g, ' ').trim(); })()"))
    assert order == ["M-Pesa Kenya · pay from your phone", "M-Pesa phone number",
                     "Pay KES 1,500.00", "Cancel and return to Alpha Shop"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.type("0708374149")
    page.keyboard.press("Enter")
    heading = page.get_by_role("heading", name="Approve on your phone")
    expect(heading).to_be_focused()  # focus follows the new state
    snap(tab, "keyboard-waiting")


def test_text_contrast_meets_wcag_aa(shop: Shop) -> None:
    tab = shop.open(shop.url(shop.session()))
    ratios = tab.page.evaluate("""(() => {
      const lum = c => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(x => {
          x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
        return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
      const bg = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e)
          .backgroundColor; if (!/rgba\\(.*, 0\\)$/.test(c) && c !== "transparent") return c; }
        return "rgb(255, 255, 255)"; };
      const out = {};
      for (const sel of [".merchant", ".amount", ".reference", "legend", ".method-name",
                         ".method-detail", "label[for=phone]", ".hint", ".btn-primary",
                         ".btn-link", ".footer p"]) {
        const e = document.querySelector(sel);
        const a = lum(getComputedStyle(e).color), b = lum(bg(e));
        out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      }
      return out; })()""")
    low = {sel: round(r, 2) for sel, r in ratios.items() if r < 4.5}
    assert not low, f"contrast below 4.5:1: {low}"


def test_late_callback_is_resolved_by_asking_the_provider(shop: Shop, settings: Any) -> None:
    settings.PESARAIL_CHECKOUT_REFRESH_AFTER_SECONDS = 1
    settings.PESARAIL_CHECKOUT_REFRESH_EVERY_SECONDS = 1
    shop.sandbox.configure(lose_callbacks=True)
    session = shop.session()
    tab = start_payment(shop, session, "lost-callback")
    answer_on_phone(shop, "Approve")
    tab.page.bring_to_front()
    expect(tab.page.get_by_role("heading", name="Paid")).to_be_visible()
    assert shop.sandbox.stats()["callbacks_lost"] >= 1
    assert shop.sandbox.stats()["queries"] >= 1
    assert services.page_state(shop.reload(session)).name == "paid"
