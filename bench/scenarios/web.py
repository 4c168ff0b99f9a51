"""Shared pieces of the HTTP scenarios (S1, S2, S4): the servers under test, seeding,
Daraja-shaped payloads, waiting for the system to settle, and the payment checks."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bench import infra

if TYPE_CHECKING:
    from bench.run import Context

#: ``pesarail serve`` exactly as the README documents it (defaults of PESARAIL_WORKERS /
#: PESARAIL_THREADS); recorded in every report.
SERVE_ARGS: list[str] = []
SANDBOX_KEY, SANDBOX_SECRET = "pesarail-sandbox-key", "pesarail-sandbox-secret"
SANDBOX_SHORTCODE = "174379"
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
RECONCILE_WINDOW_SECONDS = 30  # pesarail.payments.conf.reconcile_after_seconds default
_SCRIPTED = {"1032", "0001", "1037", "2001", "1001", "1019"}  # sandbox failure suffixes


@dataclass
class Servers:
    app_port: int
    sandbox_port: int | None
    serve_pid: int = 0

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def sandbox(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return infra.http_json(f"{self.sandbox_url}/_sandbox/{path}", body)


def phones(start: int) -> itertools.count[int]:
    return itertools.count(start)


def phone_for(n: int) -> str:
    """A distinct Kenyan number (n < 10**7) that the sandbox scripts to succeed: no
    scripted failure suffix ends in 5."""
    number = f"2547{n:07d}5"
    assert number[-4:] not in _SCRIPTED and len(number) == 12
    return number


def start_servers(ctx: Context, *, sandbox: bool, sandbox_config: dict[str, Any] | None = None,
                  env_extra: dict[str, str] | None = None, app: bool = True) -> Servers:
    app_port = infra.free_port()
    sandbox_port = infra.free_port() if sandbox else None
    servers = Servers(app_port, sandbox_port)
    if sandbox:
        ctx.procs.start("sandbox", [infra.venv_bin("pesarail"), "sandbox", "--provider",
                                    "mpesa_ke", "--port", str(sandbox_port)],
                        ctx.env(servers.app_url))
        infra._wait_port("127.0.0.1", sandbox_port or 0, 30)
        config = {"max_prompts": 1_000_000, "max_callback_log": 1_000_000, "seed": 6}
        config.update(sandbox_config or {})
        servers.sandbox("config", config)
    extra = dict(env_extra or {})
    if sandbox:
        extra["PESARAIL_SANDBOX_URL"] = servers.sandbox_url
    if not app:
        return servers
    argv = [infra.venv_bin("pesarail"), "serve", "--port", str(app_port), *SERVE_ARGS]
    env = ctx.env(servers.app_url, **extra)
    serve = ctx.procs.start("serve", argv, env)
    servers.serve_pid = serve.pid
    # the background worker + scheduler, as deployed (reconciler, tasks)
    ctx.procs.start("worker", [infra.venv_bin("pesarail"), "worker"], env)
    _wait_healthy(servers.app_url, 60)
    return servers


def warm_up(port: int, path: str, headers: dict[str, str], n: int = 40) -> None:
    """Touch every worker/thread once before measuring (lazy imports, pool fill)."""
    from bench.loadgen import Req, run_streams

    run_streams([{"name": "warm-up", "host": "127.0.0.1", "port": port, "rate": 20.0,
                  "seconds": n / 20.0, "build": lambda i: Req("GET", path, None, headers),
                  "check": lambda req, resp: None, "timeout": 60.0}])


def _wait_healthy(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            infra.http_json(f"{url}/healthz", timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"bench: {url}/healthz did not answer in {seconds:.0f} s (see logs/)")


def serve_config() -> dict[str, Any]:
    import os

    from django.conf import settings

    return {
        "command": "pesarail serve " + " ".join(SERVE_ARGS),
        "server": "gunicorn gthread",
        "workers": int(os.environ.get("PESARAIL_WORKERS", "2")),
        "threads": int(os.environ.get("PESARAIL_THREADS", "64")),
        "db_pool": _pool(settings),
        "conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE"),
        "settings": "pesarail.settings.production",
        "throttle_rate": "lifted for the run (PESARAIL_API_THROTTLE_RATE)",
    }


def seed_merchant(ctx: Context, name: str) -> dict[str, Any]:
    """A merchant, its secret key and a sandbox M-Pesa account (default credentials)."""
    from pesarail.providers import services as providers
    from pesarail.tenants import services as tenants

    merchant, key = tenants.create_merchant(f"{name}-{ctx.run_id}")
    account = providers.create_account(
        merchant, provider="mpesa_ke", name="bench", environment="sandbox",
        credentials={"consumer_key": SANDBOX_KEY, "consumer_secret": SANDBOX_SECRET,
                     "passkey": SANDBOX_PASSKEY},
        config={"shortcode": SANDBOX_SHORTCODE},
    )
    hook_path = urlsplit(account.callback_url).path
    return {"merchant": merchant, "api_key": key.secret, "account": account,
            "hook_path": hook_path}


def stk_callback(checkout_id: str, merchant_request_id: str, amount: int, phone: str,
                 receipt: str) -> bytes:
    return json.dumps({"Body": {"stkCallback": {
        "MerchantRequestID": merchant_request_id, "CheckoutRequestID": checkout_id,
        "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": float(amount)},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": 20261122021721},
            {"Name": "PhoneNumber", "Value": int(phone)}]}}}}).encode()


def open_intents(api_made_only: bool = True) -> int:
    where = f" AND {_API_MADE}" if api_made_only else ""
    return int(infra.psql("SELECT count(*) FROM payments_paymentintent WHERE status IN "
                          f"('pending', 'processing'){where}", db=infra.BENCH_DB))


def wait_quiet(servers: Servers, seconds: float = 60) -> None:
    """After an overloaded phase the server still works through requests whose client
    gave up; wait until the sandbox sees no new push for 3 s before the next phase."""
    deadline, last, still = time.monotonic() + seconds, -1, 0
    while time.monotonic() < deadline and still < 3:
        pushes = int(servers.sandbox("stats").get("pushes", 0))
        still = still + 1 if pushes == last else 0
        last = pushes
        time.sleep(1)


_API_MADE = "idempotency_key NOT LIKE 'bench-s2-%'"  # not seeded in bulk by S2/S4


def settle(servers: Servers, seconds: float = 60) -> dict[str, Any]:
    """Wait for callbacks; then, for API-made intents still open, do what the worker's
    every-minute reconciler would: once they are past the window, reconcile each one.
    (Intents seeded by S2/S4 that the run never called back are left alone: the sandbox
    never heard of them.)"""
    stats = wait_settled(servers, seconds)
    ids = infra.psql(
        "SELECT a.id FROM payments_paymentattempt a JOIN payments_paymentintent i ON "
        f"i.id = a.intent_id WHERE i.status IN ('pending', 'processing') AND i.{_API_MADE} "
        "AND a.state IN ('created', 'pending', 'unknown')", db=infra.BENCH_DB).split()
    if ids:
        oldest = float(infra.psql(
            "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM "
            f"payments_paymentintent WHERE status IN ('pending', 'processing') AND {_API_MADE}",
            db=infra.BENCH_DB))
        time.sleep(max(0.0, RECONCILE_WINDOW_SECONDS + 2 - oldest))
        from pesarail.payments import reconcile

        counts: dict[str, int] = {}
        for attempt_id in ids:
            outcome = reconcile.reconcile_attempt(attempt_id)
            counts[outcome] = counts.get(outcome, 0) + 1
        print(f"bench: reconciled {len(ids)} open attempts: {counts}", flush=True)
        stats = wait_settled(servers, 20)
    return stats


def wait_settled(servers: Servers, seconds: float) -> dict[str, Any]:
    """Wait until the sandbox has no callback left to send and no intent is open."""
    deadline = time.monotonic() + seconds
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if servers.sandbox_port:
            stats = servers.sandbox("stats")
            if stats.get("jobs_pending", 0) or stats.get("prompts_open", 0):
                time.sleep(0.5)
                continue
        if open_intents() == 0:
            break
        time.sleep(0.5)
    return stats


def payment_checks(servers: Servers | None, *, sandbox_stats: dict[str, Any] | None,
                   expected_pushes: int | None) -> dict[str, Any]:
    """Each succeeded payment credited exactly once, no credit without a success,
    nothing pending past the reconciliation window, provider pushes == intents."""
    from bench.checks import ledger_checks

    db = infra.BENCH_DB
    bad_credit = int(infra.psql(
        "SELECT count(*) FROM payments_paymentintent i WHERE i.status = 'succeeded' AND "
        "(SELECT count(*) FROM ledger_journalentry e JOIN payments_paymentattempt a "
        " ON e.cause_id = a.checkout_request_id AND e.kind = 'provider_payment' "
        " WHERE a.intent_id = i.id) <> 1", db=db))
    stray_credit = int(infra.psql(
        "SELECT count(*) FROM ledger_journalentry e JOIN payments_paymentattempt a "
        "ON e.cause_id = a.checkout_request_id JOIN payments_paymentintent i "
        "ON i.id = a.intent_id WHERE e.kind = 'provider_payment' "
        "AND i.status <> 'succeeded'", db=db))
    succeeded = int(infra.psql("SELECT count(*) FROM payments_paymentintent "
                               "WHERE status = 'succeeded'", db=db))
    stale = int(infra.psql(
        "SELECT count(*) FROM payments_paymentintent WHERE status IN ('pending', "
        f"'processing') AND created_at < now() - interval '{RECONCILE_WINDOW_SECONDS} "
        f"seconds' AND {_API_MADE}", db=db))
    still_open = open_intents()
    seeded_open = open_intents(api_made_only=False) - still_open
    checks: dict[str, Any] = ledger_checks()
    checks["credited_exactly_once"] = {"ok": bad_credit == 0 and stray_credit == 0,
                                       "succeeded": succeeded, "not_once": bad_credit,
                                       "credit_without_success": stray_credit}
    checks["nothing_pending_past_window"] = {"ok": stale == 0, "stale": stale,
                                             "open_now": still_open,
                                             "seeded_open": seeded_open,
                                             "window_s": RECONCILE_WINDOW_SECONDS}
    if sandbox_stats is not None and expected_pushes is not None:
        intents = int(infra.psql("SELECT count(*) FROM payments_paymentintent WHERE "
                                 "idempotency_key NOT LIKE 'bench-s2-%'", db=db))
        multi = int(infra.psql("SELECT count(*) FROM payments_paymentintent "
                               "WHERE attempt_count > 1", db=db))
        prompts = int(sandbox_stats.get("prompts_total", -1))
        checks["no_double_prompt"] = {
            "ok": prompts == intents and multi == 0,
            "sandbox_prompts": prompts, "sandbox_pushes": sandbox_stats.get("pushes"),
            "intents": intents, "answered_201": expected_pushes,
            "intents_with_retries": multi}
    return checks


def start_profiler(ctx: Context, servers: Servers, name: str, seconds: float) -> None:
    """``--profile``: py-spy samples every gunicorn worker (``--subprocesses``) for the
    measured phase; writes collapsed stacks (text) and a flame graph next to the JSON.
    Installs py-spy into this venv with pip when it is missing."""
    import shutil
    import subprocess
    import sys

    if not ctx.args.profile:
        return
    spy = infra.venv_bin("py-spy")
    if not shutil.which(spy):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
        spy = infra.venv_bin("py-spy")
    out = ctx.out_dir / f"{name}-profile"
    for fmt, suffix in (("raw", ".txt"), ("flamegraph", ".svg")):
        ctx.procs.start(f"py-spy-{name}-{fmt}", [
            spy, "record", "--subprocesses", "--nonblocking", "--rate", "50", "--format", fmt,
            "-d", str(int(seconds)), "-o", f"{out}{suffix}", "-p", str(servers.serve_pid)],
            dict(__import__("os").environ))


def _pool(settings: Any) -> Any:
    options: Any = settings.DATABASES["default"].get("OPTIONS") or {}
    return options.get("pool")
