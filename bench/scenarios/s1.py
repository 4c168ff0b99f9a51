"""S1: payment initiations over HTTP (``POST /api/v1/payments/``) with the sandbox
answering the STK push after 1 s (then a log-normal variant: median 1 s, p99 3 s), beside
the naive synchronous view of ``bench/naive`` against the same sandbox, in the same run.

The prompt answers itself 1 s after the push, so callbacks flow back while the load runs;
the run waits for them, then checks: audit, every success credited once, nothing left
pending, sandbox prompts == intents created (no double prompt).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from bench import infra
from bench.loadgen import Req, Resp, run_streams
from bench.scenarios import web
from bench.stats import Result, summarize_ms

if TYPE_CHECKING:
    from bench.run import Context, ScenarioReport

RATE = 250.0
NAIVE_RATE = 8.0
LOGNORMAL = {"fixed": 0, "median": 1.0, "p99": 3.0}


def initiation_stream(servers: web.Servers, seed: dict[str, Any], *, rate: float,
                      seconds: float, phone_base: int, name: str,
                      created: list[str] | None = None, path: str = "/api/v1/payments/",
                      port: int | None = None, timeout: float = 15.0) -> dict[str, Any]:
    headers = {"Authorization": f"Token {seed['api_key']}",
               "Content-Type": "application/json"}

    def build(i: int) -> Req:
        body = {"amount": "10.00", "currency": "KES", "provider": "mpesa_ke",
                "phone_number": web.phone_for(phone_base + i), "reference": f"s1-{i}"}
        return Req("POST", path, json.dumps(body).encode(),
                    {**headers, "Idempotency-Key": str(uuid.uuid4())})

    def check(req: Req, resp: Resp) -> str | None:
        if resp.status != 201:
            return f"http_{resp.status}"
        if created is not None:
            try:
                created.append(json.loads(resp.body)["id"])
            except (ValueError, KeyError):
                return "bad_body"
        return None

    return {"name": name, "host": "127.0.0.1", "port": port or servers.app_port,
            "rate": rate, "seconds": seconds, "build": build, "check": check,
            "timeout": timeout}


def to_result(stats: Any, seconds: float, cpu: float, *, name: str,
              capacity: bool = False) -> Result:
    """One table line. Throughput is what was *answered* per second of serving:
    successes over the time from the first request to the last answer, less the
    fastest answer's latency (the time one request needs however idle the server is).
    A server that keeps up gets ok/seconds; an overloaded one is not credited for the
    backlog it answers after the offered window (ok/seconds would overstate it).
    ``capacity`` is kept for callers; the window is always measured this way."""
    window = seconds
    if stats.last_done and stats.latencies:
        window = max(seconds, stats.last_done - stats.first_at - min(stats.latencies))
    s = summarize_ms(stats.latencies)
    return Result(scenario="", name=name, throughput_per_s=stats.ok / window,
                  p50_ms=s["p50_ms"], p99_ms=s["p99_ms"], errors=stats.error_count,
                  dropped=stats.dropped, offered_per_s=stats.rate, completed=stats.ok,
                  loadgen_cpu_s=cpu,
                  extra={"error_kinds": dict(stats.errors), "max_ms": s["max_ms"],
                         "statuses": {str(k): v for k, v in stats.statuses.items()}})


def _naive(ctx: Context, servers: web.Servers, seed: dict[str, Any], seconds: float
           ) -> Result:
    infra.psql("CREATE TABLE IF NOT EXISTS bench_naive_payment (id text PRIMARY KEY, "
               "phone text, amount int, status text, checkout_request_id text)",
               db=infra.BENCH_DB)
    for n in range(64):
        servers.sandbox("apps", {"consumer_key": f"naive-key-{n}",
                                 "consumer_secret": f"naive-secret-{n}",
                                 "shortcode": str(600000 + n), "passkey": web.SANDBOX_PASSKEY,
                                 "name": f"naive-{n}"})
    port = infra.free_port()
    argv = [infra.venv_bin("gunicorn"), "-c", str(infra.REPO / "bench/naive/gunicorn_conf.py"),
            "--bind", f"127.0.0.1:{port}", "bench.naive.wsgi:application"]
    env = ctx.env(f"http://127.0.0.1:{port}", PESARAIL_SANDBOX_URL=servers.sandbox_url)
    proc = ctx.procs.start("naive", argv, env)
    infra._wait_port("127.0.0.1", port, 60)
    web.warm_up(port, "/naive/callback", {}, n=20)
    rate = NAIVE_RATE
    (stats,), _, cpu = run_streams([initiation_stream(
        servers, seed, rate=rate, seconds=seconds, phone_base=5_000_000, name="naive",
        path="/naive/pay", port=port, timeout=30.0)])
    ctx.procs.stop(proc)
    result = to_result(stats, seconds, cpu, name="naive sync view (baseline)", capacity=True)
    result.extra["note"] = ("offered above its capacity; throughput = successful "
                            "initiations / time to the last one (its ceiling)")
    result.extra["config"] = "gunicorn sync, 2 x cores + 1 workers, token per call, " \
                             "provider call inside the DB transaction, no pool"
    return result


def run(ctx: Context) -> ScenarioReport:
    from bench.run import ScenarioReport

    ctx.setup_django()
    seed = web.seed_merchant(ctx, "bench-s1")
    servers = web.start_servers(ctx, sandbox=True, sandbox_config={
        "stkpush_latency": 1.0, "auto_answer_seconds": 1.0})
    rate = ctx.args.rate or RATE
    web.warm_up(servers.app_port, "/api/v1/payments/?limit=1",
                {"Authorization": f"Token {seed['api_key']}"})
    created: list[str] = []
    web.start_profiler(ctx, servers, "S1", ctx.seconds)
    (fixed,), _, cpu = run_streams([initiation_stream(
        servers, seed, rate=rate, seconds=ctx.seconds, phone_base=0, name="fixed",
        created=created)])
    ours = to_result(fixed, ctx.seconds, cpu, name="pesarail, provider 1 s")
    print(f"S1 ours: {ours.throughput_per_s:.1f}/s p99 {ours.p99_ms:.0f} ms "
          f"errors {ours.errors} dropped {ours.dropped}", flush=True)
    web.wait_quiet(servers)
    servers.sandbox("config", {"stkpush_latency": LOGNORMAL})
    log_seconds = max(1.0, ctx.seconds / 2)
    (lognormal,), _, cpu2 = run_streams([initiation_stream(
        servers, seed, rate=rate, seconds=log_seconds, phone_base=2_000_000,
        name="lognormal", created=created)])
    ours_ln = to_result(lognormal, log_seconds, cpu2,
                        name="pesarail, provider log-normal p50 1 s p99 3 s")
    print(f"S1 ours (log-normal): {ours_ln.throughput_per_s:.1f}/s p99 "
          f"{ours_ln.p99_ms:.0f} ms", flush=True)
    web.wait_quiet(servers)
    sandbox_stats = web.settle(servers)
    expected = fixed.statuses.get(201, 0) + lognormal.statuses.get(201, 0)
    invariants = web.payment_checks(servers, sandbox_stats=sandbox_stats,
                                    expected_pushes=expected)
    config = {"serve": web.serve_config(), "sandbox": servers.sandbox("config"),
              "offered_per_s": rate}
    ctx.procs.stop_all()  # the app server is done; the baseline gets the box to itself
    servers = web.start_servers(ctx, sandbox=True, sandbox_config={
        "stkpush_latency": 1.0, "auto_answer_seconds": 1.0}, app=False)
    naive = _naive(ctx, servers, seed, ctx.seconds)
    print(f"S1 naive: {naive.throughput_per_s:.1f}/s p99 {naive.p99_ms:.0f} ms", flush=True)
    for r in (ours, ours_ln, naive):
        r.scenario = "S1"
    ratio = ours.throughput_per_s / naive.throughput_per_s if naive.throughput_per_s else None
    figures = {"baseline_throughput_per_s": round(naive.throughput_per_s, 2),
               "ratio_to_baseline": round(ratio, 1) if ratio else None,
               "lognormal_throughput_per_s": round(ours_ln.throughput_per_s, 1),
               "lognormal_p99_ms": ours_ln.p99_ms}
    targets = [
        {"target": ">= 250 initiations/s", "met": ours.throughput_per_s >= 250,
         "measured": f"{ours.throughput_per_s:.1f}/s"},
        {"target": "p99 <= 1.3 s", "met": ours.p99_ms <= 1300, "measured": f"{ours.p99_ms} ms"},
        {"target": "0 errors", "met": ours.errors + ours.dropped == 0,
         "measured": str(ours.errors + ours.dropped)},
        {"target": ">= 50x naive", "met": bool(ratio and ratio >= 50),
         "measured": f"{figures['ratio_to_baseline']}x"},
    ]
    return ScenarioReport(scenario="S1", title="payment initiations/s (provider 1 s)",
                          results=[ours, ours_ln, naive], invariants=invariants,
                          config=config, figures=figures, targets=targets)
