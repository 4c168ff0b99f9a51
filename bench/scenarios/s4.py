"""S4: payment status polls (``GET /api/v1/payments/<id>/``) while S1's initiations and
S2's callbacks run against the same server at the same time."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from bench.loadgen import Req, Resp, run_streams
from bench.scenarios import s1, s2, web
from bench.scenarios.s1 import to_result

if TYPE_CHECKING:
    from bench.run import Context, ScenarioReport

RATE = 3000.0


def run(ctx: Context) -> ScenarioReport:
    from bench.run import ScenarioReport

    ctx.setup_django()
    seed = web.seed_merchant(ctx, "bench-s4")
    poll_rate = ctx.args.rate or RATE
    # The mix of the targets (250 initiations + 1,000 callbacks per 3,000 polls),
    # scaled with --rate, so a lower rate measures polls beside a load the server carries.
    scale = poll_rate / RATE
    init_rate, cb_rate = s1.RATE * scale, s2.RATE * scale
    intents = s2.seed_intents(ctx, seed, int(cb_rate * ctx.seconds) + 50,
                              phone_base=3_000_000)
    servers = web.start_servers(ctx, sandbox=True, sandbox_config={
        "stkpush_latency": 1.0, "auto_answer_seconds": 1.0})
    headers = {"Authorization": f"Token {seed['api_key']}"}
    web.warm_up(servers.app_port, "/api/v1/payments/?limit=1", headers)
    rng = random.Random(4)

    def build_poll(i: int) -> Req:
        return Req("GET", f"/api/v1/payments/{rng.choice(intents)['intent']}/", None, headers)

    def check_poll(req: Req, resp: Resp) -> str | None:
        return None if resp.status == 200 else f"http_{resp.status}"

    counters = {"unique_sent": 0, "duplicates_sent": 0}
    streams: list[dict[str, Any]] = [
        {"name": "polls", "host": "127.0.0.1", "port": servers.app_port, "rate": poll_rate,
         "seconds": ctx.seconds, "build": build_poll, "check": check_poll, "timeout": 15.0},
        s1.initiation_stream(servers, seed, rate=init_rate, seconds=ctx.seconds,
                             phone_base=6_000_000, name="initiations"),
        s2.callback_stream(seed, servers.app_port, intents, rate=cb_rate, seconds=ctx.seconds,
                           duplicates=s2.DUPLICATES, counters=counters),
    ]
    web.start_profiler(ctx, servers, "S4", ctx.seconds)
    (polls, inits, cbs), _, cpu = run_streams(streams)
    results = [to_result(polls, ctx.seconds, cpu, name="status polls"),
               to_result(inits, ctx.seconds, 0.0, name="  with S1 initiations"),
               to_result(cbs, ctx.seconds, 0.0, name="  with S2 callbacks")]
    for r in results:
        r.scenario = "S4"
    print(f"S4 polls: {results[0].throughput_per_s:.0f}/s p99 {results[0].p99_ms:.0f} ms",
          flush=True)
    sandbox_stats = web.settle(servers)
    invariants = web.payment_checks(servers, sandbox_stats=sandbox_stats,
                                    expected_pushes=inits.statuses.get(201, 0))
    pending = invariants["nothing_pending_past_window"]
    unsent = len(intents) - counters["unique_sent"]
    pending["never_called_back"] = unsent
    pending["ok"] = pending["stale"] == 0 and pending["seeded_open"] == unsent
    targets = [
        {"target": ">= 3000 polls/s", "met": results[0].throughput_per_s >= 3000,
         "measured": f"{results[0].throughput_per_s:.0f}/s"},
        {"target": "p99 < 50 ms", "met": results[0].p99_ms < 50,
         "measured": f"{results[0].p99_ms} ms"},
    ]
    return ScenarioReport(scenario="S4", title="status polls/s during S1 + S2",
                          results=results, invariants=invariants, targets=targets,
                          figures=counters,
                          config={"serve": web.serve_config(), "polls_per_s": poll_rate,
                                  "initiations_per_s": init_rate, "callbacks_per_s": cb_rate})
