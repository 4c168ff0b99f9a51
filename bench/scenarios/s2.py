"""S2: provider callbacks over HTTP (``POST /hooks/mpesa_ke/<token>/``), 20 % of them
duplicates, each success credited exactly once to a customer wallet.

Setup writes N intents in ``processing`` with one pending attempt each (bulk rows: the
state a payment is in after its push was accepted; creating 10^4 of them through the API
would take longer than the measurement). The load generator then posts Daraja-shaped
success callbacks for them (the sandbox is not needed: the generator *is* the provider).
Anchor in the same run: S0.

Then the same path with dedupe off, to price idempotency: the server is stopped, a
second, disjoint batch of intents is seeded, and the same callback stream (same rate,
same share of duplicates, same length) is sent to ``bench.dedupe_off``, which is
``pesarail serve`` with the two dedupe steps patched out in its own process (bench only;
pesarail has no such switch). The money checks must still pass there; the duplicates are
recorded ``ignored`` (the attempt already succeeded) instead of ``duplicate``.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import infra
from bench.loadgen import Req, Resp, run_streams
from bench.scenarios import web
from bench.scenarios.s1 import to_result

if TYPE_CHECKING:
    from bench.run import Context, ScenarioReport

RATE = 1000.0
DUPLICATES = 0.20
#: the dedupe-off phase's intents: phones, customers, idempotency keys and checkout ids
#: disjoint from the first phase's (which use 0 .. count); phone_for needs n < 10**7
DEDUPE_OFF_BASE = 5_000_000
#: the dedupe-off phase is shortened (never lengthened) so S2 ends well inside the hard
#: stop: what S2 may have used when that phase starts, and what its tail needs after it
BUDGET_S, TAIL_S = 270.0, 75.0
OFF_NAME = f"callbacks, {DUPLICATES:.0%} duplicates, dedupe off (bench only)"


def seed_intents(ctx: Context, seed: dict[str, Any], count: int, *, phone_base: int
                 ) -> list[dict[str, Any]]:
    """``count`` top-up intents (to distinct customers' wallets) awaiting their callback."""
    from django.utils import timezone

    from pesarail.ledger import services as ledger
    from pesarail.ledger.models import AccountKind
    from pesarail.payments.models import (
        AttemptState,
        IntentKind,
        IntentStatus,
        PaymentAttempt,
        PaymentIntent,
        PushOutcome,
    )
    from pesarail.tenants.models import Customer
    from pesarail.wallets.models import Wallet

    t = time.monotonic()
    merchant, account = seed["merchant"], seed["account"]
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [Customer(merchant=merchant, username=f"s2-{phone_base + n}") for n in range(count)],
        batch_size=2000)
    wallets = []
    for c in customers[:1]:  # the first through the service (checks the wiring) ...
        acc = ledger.get_or_create_account(AccountKind.CUSTOMER_WALLET, merchant.pk, "KES",
                                           customer_id=c.pk)
        wallets.append(Wallet.objects.get(account=acc))
    from pesarail.ledger.models import Account  # ... the rest in bulk

    accounts = Account.objects.bulk_create(
        [Account(kind=AccountKind.CUSTOMER_WALLET, merchant=merchant, customer=c,
                 currency="KES", allow_negative=False) for c in customers[1:]], batch_size=2000)
    wallets += Wallet.objects.bulk_create(
        [Wallet(merchant=merchant, customer=c, currency="KES", account=a)
         for c, a in zip(customers[1:], accounts, strict=True)], batch_size=2000)
    intents = PaymentIntent.objects.bulk_create([PaymentIntent(
        merchant=merchant, kind=IntentKind.WALLET_TOP_UP, provider="mpesa_ke",
        provider_account=account, customer=c, wallet=w, amount_minor=1000, currency="KES",
        phone="+" + web.phone_for(phone_base + n), status=IntentStatus.PROCESSING,
        expires_at=now + timedelta(hours=1), idempotency_key=f"bench-s2-{phone_base + n}",
        attempt_count=1) for n, (c, w) in enumerate(zip(customers, wallets, strict=True))],
        batch_size=2000)
    attempts = PaymentAttempt.objects.bulk_create([PaymentAttempt(
        intent=i, number=1, provider="mpesa_ke", provider_account=account, phone=i.phone,
        state=AttemptState.PENDING, push_outcome=PushOutcome.ACCEPTED,
        checkout_request_id=f"ws_CO_bench{phone_base + n:010d}",
        merchant_request_id=f"bench-{phone_base + n}", requested_at=now)
        for n, i in enumerate(intents)], batch_size=2000)
    print(f"{len(attempts)} intents awaiting callbacks seeded in "
          f"{time.monotonic() - t:.1f} s", flush=True)
    return [{"intent": i.pk, "attempt": a.pk, "checkout": a.checkout_request_id,
             "merchant_request": a.merchant_request_id, "phone": i.phone.lstrip("+"),
             "amount": 10} for i, a in zip(intents, attempts, strict=True)]


def callback_stream(seed: dict[str, Any], port: int, intents: list[dict[str, Any]], *,
                    rate: float, seconds: float, duplicates: float,
                    counters: dict[str, int], receipt_base: int = 0) -> dict[str, Any]:
    rng = random.Random(2)
    sent: list[int] = []
    nxt = iter(range(len(intents)))

    def build(i: int) -> Req | None:
        if sent and rng.random() < duplicates:
            n = rng.choice(sent)
            counters["duplicates_sent"] += 1
        else:
            n = next(nxt, -1)
            if n < 0:
                return None
            sent.append(n)
            counters["unique_sent"] += 1
        x = intents[n]
        body = web.stk_callback(x["checkout"], x["merchant_request"], x["amount"], x["phone"],
                                f"R{receipt_base + n:09d}"[-10:])
        return Req("POST", f"{seed['hook_path']}{x['attempt']}/", body,
                   {"Content-Type": "application/json"})

    def check(req: Req, resp: Resp) -> str | None:
        return None if resp.status == 200 else f"http_{resp.status}"

    return {"name": "callbacks", "host": "127.0.0.1", "port": port, "rate": rate,
            "seconds": seconds, "build": build, "check": check, "timeout": 15.0}


def callback_figures() -> dict[str, Any]:
    from bench import infra

    rows = infra.psql("SELECT status, count(*) FROM payments_callbackrecord GROUP BY 1",
                      db=infra.BENCH_DB)
    return {"callback_records": dict(line.split("|") for line in rows.splitlines() if line)}


def callback_counts() -> dict[str, int]:
    return {k: int(v) for k, v in callback_figures()["callback_records"].items()}


def app_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a gunicorn master and its workers so far."""
    pids = {pid}
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids.update(int(c) for c in children.read_text().split())
    ticks = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def drain(seconds: float = 30.0) -> None:
    """After an overloaded phase the server still works through callbacks whose client
    gave up (they are queued in gunicorn): wait until no callback record is added or
    left in progress for 2 s, so the checks see what the server did with all of them
    and the next phase does not share the CPU with this one's backlog."""
    deadline, last, still = time.monotonic() + seconds, "", 0
    while time.monotonic() < deadline and still < 4:
        now = infra.psql("SELECT count(*) || '/' || count(*) FILTER (WHERE status = "
                         "'received') FROM payments_callbackrecord", db=infra.BENCH_DB)
        still = still + 1 if now == last and now.endswith("/0") else 0
        last = now
        time.sleep(0.5)


def stop_app(ctx: Context) -> None:
    """Stop the server under test and its worker, so the next phase has the CPU."""
    for name, proc in list(ctx.procs.procs):
        if name in {"serve", "worker"}:
            ctx.procs.stop(proc)


def start_dedupe_off(ctx: Context) -> web.Servers:
    """``python -m bench.dedupe_off``: ``pesarail serve`` with dedupe patched out, with
    the environment, settings and worker of :func:`web.start_servers`."""
    port = infra.free_port()
    servers = web.Servers(port, None)
    env = ctx.env(servers.app_url)
    serve = ctx.procs.start("serve-dedupe-off", [sys.executable, "-m", "bench.dedupe_off",
                                                 "--port", str(port), *web.SERVE_ARGS], env)
    servers.serve_pid = serve.pid
    ctx.procs.start("worker-dedupe-off", [infra.venv_bin("pesarail"), "worker"], env)
    web._wait_healthy(servers.app_url, 60)
    return servers


def run(ctx: Context) -> ScenarioReport:
    from bench.run import ScenarioReport

    started = time.monotonic()
    ctx.setup_django()
    seed = web.seed_merchant(ctx, "bench-s2")
    rate = ctx.args.rate or RATE
    intents = seed_intents(ctx, seed, int(rate * ctx.seconds * (1 - DUPLICATES)) + 50,
                           phone_base=0)
    servers = web.start_servers(ctx, sandbox=False)
    web.warm_up(servers.app_port, "/api/v1/payments/?limit=1",
                {"Authorization": f"Token {seed['api_key']}"})
    counters = {"unique_sent": 0, "duplicates_sent": 0}
    web.start_profiler(ctx, servers, "S2", ctx.seconds)
    cpu0 = app_cpu_s(servers.serve_pid)
    (stats,), _, cpu = run_streams([callback_stream(
        seed, servers.app_port, intents, rate=rate, seconds=ctx.seconds,
        duplicates=DUPLICATES, counters=counters)])
    app_cpu = app_cpu_s(servers.serve_pid) - cpu0
    result = to_result(stats, ctx.seconds, cpu, name=f"callbacks, {DUPLICATES:.0%} duplicates")
    result.scenario = "S2"
    print(f"S2: {result.throughput_per_s:.0f}/s p99 {result.p99_ms:.0f} ms errors "
          f"{result.errors}", flush=True)
    web.wait_settled(servers, 10)
    drain()
    invariants = web.payment_checks(servers, sandbox_stats=None, expected_pushes=None)
    # intents that got no callback (the run ended first) stay open by design: not a failure
    pending = invariants["nothing_pending_past_window"]
    unsent = len(intents) - counters["unique_sent"]
    pending["never_called_back"] = unsent
    pending["ok"] = pending["stale"] == 0 and pending["seeded_open"] == unsent
    figures: dict[str, Any] = {**counters, **callback_figures()}
    records = figures["callback_records"]
    figures["duplicates_rejected"] = int(records.get("duplicate", 0))
    figures["app_cpu_ms_per_callback"] = _per_call_ms(app_cpu, stats)
    figures["drained_per_s"] = _drained_per_s(stats, ctx.seconds)
    figures["pgbench_tps"] = round(ctx.pgbench_tps or 0.0, 1)
    if ctx.pgbench_tps:
        figures["ratio_to_S0"] = round(result.throughput_per_s / ctx.pgbench_tps, 3)
    invariants["duplicates_all_rejected"] = {
        "ok": figures["duplicates_rejected"] >= counters["duplicates_sent"] - result.errors,
        "sent": counters["duplicates_sent"], "rejected": figures["duplicates_rejected"]}
    targets = [
        {"target": ">= 1000 callbacks/s exactly-once", "met": result.throughput_per_s >= 1000
         and all(v.get("ok") for v in invariants.values()),
         "measured": f"{result.throughput_per_s:.0f}/s"},
        {"target": "p99 < 100 ms", "met": result.p99_ms < 100, "measured": f"{result.p99_ms} ms"},
    ]

    stop_app(ctx)
    off, off_checks, off_figures, off_config = dedupe_off_phase(
        ctx, seed, rate, unsent_before=unsent, started=started)
    invariants.update({f"dedupe_off_{k}": v for k, v in off_checks.items()})
    figures.update(off_figures)
    # on the drained rate: when the server falls behind, the printed done/s (answers /
    # scheduled seconds) is the offered rate for both phases and would price nothing
    if off_figures["dedupe_off_drained_per_s"]:
        figures["dedupe_price"] = round(
            figures["drained_per_s"] / off_figures["dedupe_off_drained_per_s"], 3)
    if off_figures["dedupe_off_app_cpu_ms_per_callback"]:
        figures["dedupe_price_cpu"] = round(
            figures["app_cpu_ms_per_callback"]
            / off_figures["dedupe_off_app_cpu_ms_per_callback"], 3)
    return ScenarioReport(scenario="S2", title="exactly-once callbacks/s",
                          results=[result, off], invariants=invariants, figures=figures,
                          targets=targets,
                          config={"serve": web.serve_config(), "duplicates": DUPLICATES,
                                  "intents_seeded": len(intents), "offered_per_s": rate,
                                  "dedupe_off": off_config})


def dedupe_off_phase(ctx: Context, seed: dict[str, Any], rate: float, *, unsent_before: int,
                     started: float) -> tuple[Any, dict[str, Any], dict[str, Any],
                                              dict[str, Any]]:
    """The same callback stream against ``bench.dedupe_off``, on a fresh batch of intents.
    The money checks run on the whole database (both phases)."""
    seconds = min(ctx.seconds, max(5.0, BUDGET_S - TAIL_S - (time.monotonic() - started)))
    before = callback_counts()
    intents = seed_intents(ctx, seed, int(rate * seconds * (1 - DUPLICATES)) + 50,
                           phone_base=DEDUPE_OFF_BASE)
    servers = start_dedupe_off(ctx)
    web.warm_up(servers.app_port, "/api/v1/payments/?limit=1",
                {"Authorization": f"Token {seed['api_key']}"})
    counters = {"unique_sent": 0, "duplicates_sent": 0}
    web.start_profiler(ctx, servers, "S2-dedupe-off", seconds)
    cpu0 = app_cpu_s(servers.serve_pid)
    (stats,), _, cpu = run_streams([callback_stream(
        seed, servers.app_port, intents, rate=rate, seconds=seconds, duplicates=DUPLICATES,
        counters=counters, receipt_base=DEDUPE_OFF_BASE)])
    app_cpu = app_cpu_s(servers.serve_pid) - cpu0
    result = to_result(stats, seconds, cpu, name=OFF_NAME)
    result.scenario = "S2"
    print(f"S2 dedupe off: {result.throughput_per_s:.0f}/s p99 {result.p99_ms:.0f} ms errors "
          f"{result.errors}", flush=True)
    web.wait_settled(servers, 10)
    drain()
    checks = web.payment_checks(servers, sandbox_stats=None, expected_pushes=None)
    pending = checks["nothing_pending_past_window"]
    unsent = len(intents) - counters["unique_sent"]
    pending["never_called_back"] = unsent_before + unsent
    pending["ok"] = pending["stale"] == 0 and pending["seeded_open"] == unsent_before + unsent
    after = callback_counts()
    records = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    records = {k: v for k, v in records.items() if v}
    ignored, duplicate = records.get("ignored", 0), records.get("duplicate", 0)
    sent = counters["duplicates_sent"]
    # dedupe really off (nothing recorded `duplicate`), and every duplicate that got an
    # answer was turned away by the attempt's state instead
    checks["duplicates_recorded_ignored"] = {
        "ok": duplicate == 0 and sent - result.errors <= ignored <= sent,
        "sent": sent, "ignored": ignored, "duplicate": duplicate}
    figures = {
        "dedupe_off_throughput_per_s": round(result.throughput_per_s, 1),
        "dedupe_off_p50_ms": result.p50_ms,
        "dedupe_off_p99_ms": result.p99_ms,
        "dedupe_off_app_cpu_ms_per_callback": _per_call_ms(app_cpu, stats),
        "dedupe_off_drained_per_s": _drained_per_s(stats, seconds),
        "dedupe_off_unique_sent": counters["unique_sent"],
        "dedupe_off_duplicates_sent": sent,
        "dedupe_off_duplicates_ignored": ignored,
        "dedupe_off_callback_records": records,
    }
    config = {"server": "python -m bench.dedupe_off (pesarail serve; callbacks."
                        "already_received and the dedupe key of services.apply_result "
                        "patched out in that process)",
              "seconds": seconds, "intents_seeded": len(intents),
              "intent_base": DEDUPE_OFF_BASE}
    if seconds < ctx.seconds:
        figures["dedupe_off_seconds"] = round(seconds, 1)
    return result, checks, figures, config


def _drained_per_s(stats: Any, seconds: float) -> float:
    """Answers per second until the last one came back (the rate the server actually
    carried, queueing included); the phase's done/s when it kept up."""
    return round(to_result(stats, seconds, 0.0, name="", capacity=True).throughput_per_s, 1)


def _per_call_ms(cpu_s: float, stats: Any) -> float:
    answered = stats.ok + stats.error_count
    return round(1000 * cpu_s / answered, 2) if answered else 0.0
