"""S3: ledger transfers at service level (``pesarail.ledger.services.transfer``).

Two phases, each an open-model load at a fixed rate spread over worker processes (one
per core, threads inside, the app's own connection pool settings):

* uniform: each transfer moves 1.00 between two customer wallets drawn at random;
* hot: every transfer touches one hot float account (half from it, half into it).

Anchors in the same run: S0 (pgbench TPC-B) and the same SQL the service issues, run by
pgbench as a custom script (what PostgreSQL alone could do with the ORM and Python out of
the way). Deadlocks are counted from the workers' errors and ``pg_stat_database``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import infra
from bench.checks import ledger_checks
from bench.scenarios.s0 import CLIENTS, pgbench
from bench.stats import Result, summarize_ms

if TYPE_CHECKING:
    from bench.run import Context, ScenarioReport

WALLETS = 1000
PROCESSES = 2
THREADS = 8
UNIFORM_RATE = 2000.0
HOT_RATE = 1500.0
FUNDING = 10**10  # minor units per wallet; transfers move 100

_PGBENCH_SCRIPT = Path(__file__).resolve().parent.parent / "sql" / "s3_transfer.sql"


def _seed(ctx: Context) -> dict[str, Any]:
    from django.db import connection

    from pesarail.ledger import services as ledger
    from pesarail.ledger.models import Account, AccountKind
    from pesarail.tenants import services as tenants
    from pesarail.tenants.models import Customer
    from pesarail.wallets.models import Wallet

    t = time.monotonic()
    merchant, _ = tenants.create_merchant(f"bench-s3-{ctx.run_id}")
    suspense = ledger.get_or_create_account(AccountKind.SUSPENSE, merchant.pk, "KES")
    hot = ledger.get_or_create_account(AccountKind.MERCHANT_SETTLEMENT, merchant.pk, "KES")
    # bulk rows (seeding only; the measured transfers go through the service)
    customers = Customer.objects.bulk_create(
        [Customer(merchant=merchant, username=f"s3-{n}") for n in range(WALLETS)])
    wallets = Account.objects.bulk_create(
        [Account(kind=AccountKind.CUSTOMER_WALLET, merchant=merchant, customer=c,
                 currency="KES", allow_negative=False) for c in customers])
    Wallet.objects.bulk_create([Wallet(merchant=merchant, customer=c, currency="KES",
                                       account=a) for c, a in zip(customers, wallets,
                                                                  strict=True)])
    legs = [ledger.Leg(w, FUNDING) for w in wallets] + [ledger.Leg(hot, FUNDING * 10)]
    legs.append(ledger.Leg(suspense, -sum(leg.amount for leg in legs)))
    ledger.post(legs=legs, currency="KES", idempotency_key=f"bench-s3-funding-{ctx.run_id}")
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE bench_s3_accounts (n int PRIMARY KEY, id text NOT NULL)")
        cur.executemany("INSERT INTO bench_s3_accounts VALUES (%s, %s)",
                        [(i + 1, w.pk) for i, w in enumerate(wallets)] + [(0, hot.pk)])
        cur.execute("ANALYZE")
    print(f"S3: seeded {WALLETS} funded wallets and a hot float in "
          f"{time.monotonic() - t:.1f} s", flush=True)
    return {"merchant": merchant.pk, "wallets": [w.pk for w in wallets], "hot": hot.pk}


def _phase(ctx: Context, seed: dict[str, Any], *, name: str, rate: float,
           hot: bool) -> Result:
    start_at = time.time() + 2.0  # workers import Django first, then start together
    procs = []
    for proc in range(PROCESSES):
        spec = {"rate": rate / PROCESSES, "seconds": ctx.seconds, "threads": THREADS,
                "accounts": seed["wallets"] + [seed["hot"]],
                "hot": seed["hot"] if hot else None, "seed": proc + (100 if hot else 0),
                "currency": "KES", "run": f"{ctx.run_id}-{name}", "proc": proc,
                "start_at": start_at}
        argv = [sys.executable, "-m", "bench.s3_worker"]
        if ctx.args.profile and proc == 0:
            html = ctx.out_dir / f"S3-{name.replace(' ', '-')}-profile.html"
            argv = [sys.executable, "-m", "pyinstrument", "-r", "html", "-o", str(html),
                    "-m", "bench.s3_worker"]
        p = ctx.procs.start(f"s3-{name.replace(' ', '-')}-{proc}", argv, ctx.env(), pipe=True)
        assert p.stdin is not None
        p.stdin.write(json.dumps(spec).encode() + b"\n")
        p.stdin.close()
        procs.append(p)
    deadlocks_before = infra.pg_deadlocks()
    outputs = []
    for p in procs:
        assert p.stdout is not None
        out = p.stdout.read()  # results come at the end; the hard stop bounds the wait
        p.wait(timeout=30)
        lines = [line for line in out.decode().splitlines() if line.startswith("{")]
        if p.returncode != 0 or not lines:
            raise RuntimeError(f"S3 worker failed (exit {p.returncode})")
        outputs.append(json.loads(lines[-1]))
    latencies = [x for o in outputs for x in o["latencies"]]
    errors: dict[str, int] = {}
    for o in outputs:
        for kind, count in o["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    wall = max(o["wall_s"] for o in outputs)
    deadlocks = infra.pg_deadlocks() - deadlocks_before
    summary = summarize_ms(latencies)
    return Result(
        scenario="S3", name=name, throughput_per_s=len(latencies) / wall,
        p50_ms=summary["p50_ms"], p99_ms=summary["p99_ms"],
        errors=sum(errors.values()) + sum(o["not_finished"] for o in outputs),
        dropped=sum(o["dropped"] for o in outputs),
        offered_per_s=rate, completed=len(latencies),
        loadgen_cpu_s=0.0,
        extra={"error_kinds": errors, "deadlocks": deadlocks + errors.get("deadlock", 0),
               "pg_deadlocks": deadlocks, "max_ms": summary["max_ms"],
               "worker_cpu_s": round(sum(o["cpu_s"] for o in outputs), 2),
               "note": "service level: the worker processes are the code under test, "
                       "so their CPU is the app's, not a load generator's"},
    )


def _pgbench_same_sql(ctx: Context, seed: dict[str, Any], *, hot: bool) -> dict[str, float]:
    script = ctx.out_dir / f"s3-{'hot' if hot else 'uniform'}.sql"
    if hot:  # half the transfers leave the hot account, half go into it
        src_n, dst_n = "CASE WHEN :flip = 1 THEN 0 ELSE :b END", \
            "CASE WHEN :flip = 1 THEN :b ELSE 0 END"
    else:
        src_n, dst_n = ":a", ":b"
    text = _PGBENCH_SCRIPT.read_text().replace("{src_n}", src_n).replace("{dst_n}", dst_n)
    script.write_text(text)
    return pgbench(["-D", f"naccounts={WALLETS}", "-D", f"merchant={seed['merchant']}"],
                   min(ctx.seconds, 10), script=script, clients=CLIENTS)


def run(ctx: Context) -> ScenarioReport:
    from bench.run import ScenarioReport

    ctx.setup_django()
    seed = _seed(ctx)
    uniform_rate = ctx.args.rate or UNIFORM_RATE
    hot_rate = ctx.args.rate or HOT_RATE
    uniform = _phase(ctx, seed, name="uniform", rate=uniform_rate, hot=False)
    print(f"S3 uniform: {uniform.throughput_per_s:.0f}/s p99 {uniform.p99_ms:.0f} ms",
          flush=True)
    hot = _phase(ctx, seed, name="hot account", rate=hot_rate, hot=True)
    print(f"S3 hot: {hot.throughput_per_s:.0f}/s p99 {hot.p99_ms:.0f} ms", flush=True)
    sql_uniform = _pgbench_same_sql(ctx, seed, hot=False)
    sql_hot = _pgbench_same_sql(ctx, seed, hot=True)
    for result, sql in ((uniform, sql_uniform), (hot, sql_hot)):
        result.extra["same_sql_pgbench_tps"] = round(sql["tps"], 1)
    invariants = ledger_checks()
    pg = ctx.pgbench_tps or 0.0
    figures: dict[str, Any] = {
        "pgbench_tps": round(pg, 1),
        "uniform_per_s": round(uniform.throughput_per_s, 1),
        "hot_per_s": round(hot.throughput_per_s, 1),
        "uniform_ratio_to_S0": round(uniform.throughput_per_s / pg, 3) if pg else None,
        "hot_ratio_to_S0": round(hot.throughput_per_s / pg, 3) if pg else None,
        "same_sql_pgbench_tps_uniform": round(sql_uniform["tps"], 1),
        "same_sql_pgbench_tps_hot": round(sql_hot["tps"], 1),
        "uniform_ratio_to_same_sql": round(uniform.throughput_per_s / sql_uniform["tps"], 3),
        "deadlocks": uniform.extra["deadlocks"] + hot.extra["deadlocks"],
    }
    targets = [
        {"target": "uniform >= 2000/s", "met": uniform.throughput_per_s >= 2000,
         "measured": f"{uniform.throughput_per_s:.0f}/s"},
        {"target": "uniform >= 25% of S0", "met": bool(pg) and
         uniform.throughput_per_s >= 0.25 * pg,
         "measured": f"{figures['uniform_ratio_to_S0']}"},
        {"target": "hot >= 1500/s", "met": hot.throughput_per_s >= 1500,
         "measured": f"{hot.throughput_per_s:.0f}/s"},
        {"target": "0 deadlocks", "met": figures["deadlocks"] == 0,
         "measured": str(figures["deadlocks"])},
    ]
    return ScenarioReport(
        scenario="S3", title="ledger transfers/s (service level)", results=[uniform, hot],
        invariants=invariants, figures=figures, targets=targets,
        config={"processes": PROCESSES, "threads_per_process": THREADS, "wallets": WALLETS,
                "amount_minor": 100, "db_pool": _pool_settings(),
                "pgbench_same_sql_clients": CLIENTS,
                "pgbench_script": str(Path(ctx.out_dir / "s3-uniform.sql"))},
    )


def _pool_settings() -> Any:
    from django.conf import settings

    options: Any = settings.DATABASES["default"].get("OPTIONS") or {}
    return options.get("pool")
