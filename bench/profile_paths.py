"""Profile one request path in-process with pyinstrument (CPU per request, no network,
no concurrency noise): ``python -m bench.profile_paths {callback,poll,initiate} [-n N]``.

Runs against a fresh ``pesarail_bench`` database with the production settings, through
the whole Django stack (middleware, DRF, services) via ``django.test.Client``. Writes
``$PESARAIL_HOME/bench/profile-<path>.txt`` and ``.html`` and prints the top of the tree
plus the CPU milliseconds per request.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench import infra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_paths")
    parser.add_argument("path", choices=["callback", "poll", "initiate", "transfer"])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--plain", action="store_true",
                        help="no profiler: only CPU and wall per request (before/after)")
    args = parser.parse_args(argv)
    home = Path(os.environ.get("PESARAIL_HOME") or infra.REPO / ".pesarail").resolve()
    out = home / "bench"
    out.mkdir(parents=True, exist_ok=True)
    infra.ensure_postgres()
    infra.recreate_database()
    try:
        sandbox = None
        env = infra.bench_env(home, "http://127.0.0.1:8000", {
            "PESARAIL_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver"})
        subprocess.run([infra.venv_bin("pesarail"), "migrate", "-v", "0"], env=env, check=True)
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "pesarail.settings.production"
        if args.path == "initiate":
            from pesarail.sandbox.daraja import DarajaConfig, run_daraja

            sandbox, _sim = run_daraja(config=DarajaConfig(auto_answer_seconds=3600,
                                                           max_prompts=100_000))
            os.environ["PESARAIL_SANDBOX_URL"] = sandbox.url
        import django

        django.setup()
        from django.test import Client
        from pyinstrument import Profiler

        from bench.scenarios import s2, web

        class _Ctx:
            run_id = uuid.uuid4().hex[:8]

        seed = web.seed_merchant(_Ctx(), "profile")  # type: ignore[arg-type]
        client = Client(HTTP_AUTHORIZATION=f"Token {seed['api_key']}")
        intents = s2.seed_intents(_Ctx(), seed, args.n + 10, phone_base=0)  # type: ignore[arg-type]

        accounts: list[Any] = []
        if args.path == "transfer":
            from pesarail.common.money import Money
            from pesarail.ledger import services as ledger
            from pesarail.ledger.models import AccountKind
            from pesarail.tenants import services as tenants

            owner, _key = tenants.create_merchant(f"profile-transfer-{_Ctx.run_id}")
            suspense = ledger.get_or_create_account(AccountKind.SUSPENSE, owner.pk, "KES")
            for n in range(2):
                customer = tenants.create_customer(owner, username=f"profile-{n}")
                accounts.append(ledger.get_or_create_account(
                    AccountKind.CUSTOMER_WALLET, owner.pk, "KES", customer_id=customer.pk))
            ledger.post(legs=[ledger.Leg(accounts[0], 10**9), ledger.Leg(accounts[1], 10**9),
                              ledger.Leg(suspense, -2 * 10**9)],
                        currency="KES", idempotency_key=f"profile-funding-{_Ctx.run_id}")

        def one(i: int) -> None:
            if args.path == "transfer":
                ledger.transfer(source=accounts[i % 2], destination=accounts[1 - i % 2],
                                money=Money(100, "KES"),
                                idempotency_key=f"profile-transfer-{_Ctx.run_id}-{i}")
            elif args.path == "callback":
                x = intents[i]
                body = web.stk_callback(x["checkout"], x["merchant_request"], x["amount"],
                                        x["phone"], f"R{i:09d}")
                r = client.post(f"{seed['hook_path']}{x['attempt']}/", body,
                                content_type="application/json")
                assert r.status_code == 200, r.content
            elif args.path == "poll":
                r = client.get(f"/api/v1/payments/{intents[i]['intent']}/")
                assert r.status_code == 200, r.content
            elif args.path == "initiate":
                r = client.post("/api/v1/payments/", json.dumps({
                    "amount": "10.00", "currency": "KES", "provider": "mpesa_ke",
                    "phone_number": web.phone_for(5_000_000 + i)}),
                    content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
                assert r.status_code == 201, r.content

        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        for i in range(4):  # warm caches, imports and the pool
            one(args.n + i)
        with CaptureQueriesContext(connection) as captured:
            one(args.n + 4)
        statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
        (out / f"profile-{args.path}-queries.sql").write_text(
            "\n\n".join(q["sql"] for q in captured.captured_queries) + "\n")
        profiler = Profiler(interval=0.0005)
        cpu0, wall0 = time.process_time(), time.monotonic()
        if not args.plain:
            profiler.start()
        for i in range(args.n):
            one(i)
        cpu = (time.process_time() - cpu0) / args.n * 1000
        wall = (time.monotonic() - wall0) / args.n * 1000
        if not args.plain:
            profiler.stop()
            text = profiler.output_text(unicode=True, color=False)
            (out / f"profile-{args.path}.txt").write_text(text)
            (out / f"profile-{args.path}.html").write_text(profiler.output_html())
            print(text[:6000])
        kinds = {k: statements.count(k) for k in sorted(set(statements))}
        print(f"{args.path}: {len(statements)} SQL statements per request {kinds}")
        print(f"{args.path}: {cpu:.2f} ms CPU, {wall:.2f} ms wall per request "
              f"(load average {infra.load_average()}); profile in {out}")
    finally:
        if sandbox is not None:
            sandbox.stop()
        infra.drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
