"""``pesarail demo`` (and ``make demo``): everything a newcomer needs, on loopback.

Migrates the embedded database, makes sure a demo merchant and key exist, starts the
web app (and the worker and sandbox once those exist), prints the URLs and the key and
writes them to ``$PESARAIL_HOME/demo.json``. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from pesarail.tenants import services
from pesarail.tenants.models import Merchant

DEMO_MERCHANT_NAME = "Demo Shop"
DEMO_PHONE = "254708374149"


def ensure_demo_merchant(state_file: Path) -> tuple[Merchant, str]:
    """Reuse the demo merchant and key from a previous run if the key still works."""
    if state_file.exists():
        try:
            previous = json.loads(state_file.read_text())
            key = services.authenticate_api_key(previous.get("api_key", ""))
        except (ValueError, OSError):
            key = None
        if key is not None:
            return key.merchant, previous["api_key"]
    merchant = Merchant.objects.filter(name=DEMO_MERCHANT_NAME).order_by("pk").first()
    if merchant is None:
        merchant, new = services.create_merchant(DEMO_MERCHANT_NAME, country="KE",
                                                 default_currency="KES")
    else:
        new = services.create_api_key(merchant, name="demo")
    return merchant, new.secret


class Command(BaseCommand):
    help = "Set up and run the demo: web app, worker and sandbox on 127.0.0.1."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--sandbox-port", type=int, default=None,
                            help="port of the M-Pesa simulator (default: --port + 1)")
        parser.add_argument("--auto-answer", type=float, default=12.0, metavar="SECONDS",
                            help="seconds before an unanswered sandbox prompt answers by "
                                 "itself (time enough to answer on the sandbox phone page)")
        parser.add_argument("--no-wait", action="store_true",
                            help="set up, start, print, then stop (for scripted checks)")

    def handle(self, *args: Any, **options: Any) -> None:
        home = Path(settings.PESARAIL_HOME)
        home.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        state_file = home / "demo.json"
        merchant, api_key = ensure_demo_merchant(state_file)

        host, port = options["host"], options["port"]
        sandbox_port = options["sandbox_port"] or port + 1
        base_url = os.environ.get("PESARAIL_BASE_URL", f"http://{host}:{port}").rstrip("/")
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        # This process builds the demo's callback and checkout URLs: same values as the
        # children get through their environment.
        settings.PESARAIL_BASE_URL = base_url
        settings.PESARAIL_SANDBOX_URL = sandbox_url
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "pesarail.settings.demo",
            "PESARAIL_HOME": str(home),
            "PESARAIL_BASE_URL": base_url,
            "PESARAIL_SANDBOX_URL": sandbox_url,
            "PESARAIL_SANDBOX_ENABLED": "true",
        }
        exe = [sys.executable, "-m", "pesarail.cli"]
        # S603 below: our own interpreter and fixed arguments.
        processes: list[subprocess.Popen[bytes]] = [
            subprocess.Popen([*exe, "sandbox", "--provider", "mpesa_ke",  # noqa: S603
                              "--port", str(sandbox_port),
                              "--auto-answer", str(options["auto_answer"])], env=env),
            subprocess.Popen([*exe, "serve", "--host", host, "--port", str(port),  # noqa: S603
                              "--workers", "2", "--threads", "8"], env=env),
            subprocess.Popen([*exe, "worker"], env=env),  # noqa: S603
        ]
        try:
            self._wait_healthy(base_url, processes)
            self._wait_healthy(sandbox_url, processes, path="/_sandbox/health")
            from pesarail.checkout.services import checkout_url, create_demo_checkout_session

            session = create_demo_checkout_session(merchant)
            info = {
                "base_url": base_url,
                "api_key": api_key,
                "merchant_id": merchant.pk,
                "merchant_name": merchant.name,
                "docs_url": f"{base_url}/api/v1/docs/",
                "schema_url": f"{base_url}/api/v1/schema/",
                "admin_url": f"{base_url}/admin/",
                "health_url": f"{base_url}/healthz",
                "checkout_url": checkout_url(session),
                "sandbox_url": sandbox_url,
                "sandbox_phone_url": f"{base_url}/sandbox/phone/{DEMO_PHONE}/",
                "test_phone": DEMO_PHONE,
            }
            state_file.write_text(json.dumps(info, indent=2) + "\n")
            state_file.chmod(0o600)
            self._print(info, state_file)
            if options["no_wait"]:
                return
            self._supervise(processes)
        finally:
            for proc in processes:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in processes:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def _wait_healthy(self, base_url: str, processes: list[subprocess.Popen[bytes]],
                      path: str = "/healthz") -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in processes):
                raise SystemExit("pesarail demo: a process exited during start-up (see above)")
            try:
                if httpx.get(f"{base_url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"pesarail demo: {base_url}{path} did not answer within 60 s")

    def _print(self, info: dict[str, str], state_file: Path) -> None:
        w = self.stdout.write
        w("")
        w("pesarail demo is running")
        w(f"  API           {info['base_url']}/api/v1/")
        w(f"  API docs      {info['docs_url']}")
        w(f"  Admin         {info['admin_url']}  (create a login: PESARAIL_ENV=demo "
          ".venv/bin/pesarail createsuperuser)")
        w(f"  Health        {info['health_url']}")
        w(f"  Checkout      {info['checkout_url']}")
        w(f"  Sandbox phone {info['sandbox_phone_url']}  (answer M-Pesa prompts here)")
        w(f"  M-Pesa sim    {info['sandbox_url']}  (Daraja protocol; worker and reconciler on)")
        w(f"  Merchant      {info['merchant_name']} ({info['merchant_id']})")
        w(f"  API key       {info['api_key']}")
        w(f"  Written to    {state_file}")
        w("")
        w(f"  Try: curl -H 'Authorization: Token {info['api_key']}' "
          f"{info['base_url']}/api/v1/merchants/me/")
        w("  A payment (phones ending 1032 cancel, 0001 lack funds; see docs/sandbox.md):")
        w(f"    curl -X POST -H 'Authorization: Token {info['api_key']}' "
          f"-H 'Idempotency-Key: demo-1' -H 'Content-Type: application/json' "
          f"-d '{{\"amount\": \"10.00\", \"currency\": \"KES\", \"provider\": \"mpesa_ke\", "
          f"\"phone_number\": \"0708374149\", \"reference\": \"order-1\"}}' "
          f"{info['base_url']}/api/v1/payments/")
        w("Press Ctrl-C to stop.")

    def _supervise(self, processes: list[subprocess.Popen[bytes]]) -> None:
        stop = False

        def _stop(*_: Any) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        try:
            while not stop:
                for proc in processes:
                    if proc.poll() is not None:
                        self.stderr.write(f"a demo process exited with {proc.returncode}")
                        return
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
