"""S0: pgbench TPC-B-like, 8 clients, on the same server and database: the box's ceiling
for a small durable write transaction. S2 and S3 report their ratio to it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from bench import infra
from bench.stats import Result

if TYPE_CHECKING:
    from bench.run import Context, ScenarioReport

CLIENTS = 8
SCALE = 8  # one branch row per client, as TPC-B intends (no artificial branch contention)


def pgbench(args: list[str], seconds: float, script: Path | None = None,
            clients: int = CLIENTS) -> dict[str, float]:
    argv = [infra.pg_bin("pgbench"), "-h", infra.PG_HOST, "-p", str(infra.PG_PORT),
            "-U", infra.PG_USER, "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
            "--no-vacuum" if script else "-r", *args]
    if script is not None:
        argv += ["-f", str(script)]
    argv.append(infra.BENCH_DB)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {proc.stderr[-1500:]}")
    out = proc.stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    return {"tps": tps, "latency_avg_ms": float(latency.group(1)) if latency else 0.0,
            "failed": int(failed.group(1)) if failed else 0}


def run(ctx: Context) -> ScenarioReport:
    from bench.run import ScenarioReport

    subprocess.run([infra.pg_bin("pgbench"), "-h", infra.PG_HOST, "-p", str(infra.PG_PORT),
                    "-U", infra.PG_USER, "-i", "-q", "-s", str(SCALE), infra.BENCH_DB],
                   check=True, capture_output=True, timeout=240)
    measured = pgbench([], ctx.seconds)
    ctx.pgbench_tps = measured["tps"]
    result = Result(scenario="S0", name=f"pgbench TPC-B c={CLIENTS}",
                    throughput_per_s=measured["tps"], p50_ms=measured["latency_avg_ms"],
                    errors=int(measured["failed"]), completed=int(measured["tps"] * ctx.seconds),
                    extra={"latency_avg_ms": measured["latency_avg_ms"],
                           "note": "p50_ms holds pgbench's average latency"})
    return ScenarioReport(
        scenario="S0", title="pgbench TPC-B-like anchor", results=[result],
        invariants={"pgbench_no_failed_transactions": {"ok": measured["failed"] == 0}},
        config={"clients": CLIENTS, "threads": 2, "scale": SCALE, "protocol": "simple",
                "postgres": infra.pg_settings()},
        figures={"pgbench_tps": round(measured["tps"], 1)},
    )
