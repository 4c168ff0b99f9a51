"""S3 worker process: ledger transfers at service level, open model.

``python -m bench.s3_worker < SPEC_JSON`` (started by the harness with the bench
environment). A dispatcher schedules transfer ``i`` at ``t0 + i / rate`` and hands it to
a pool of threads that call :func:`pesarail.ledger.services.transfer`, the same service
the API uses. Latency counts from the scheduled time. Prints one JSON line of results.
"""

from __future__ import annotations

import json
import os
import queue
import random
import resource
import sys
import threading
import time
from collections import Counter
from typing import Any


def main() -> None:
    spec: dict[str, Any] = json.loads(sys.stdin.readline())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pesarail.settings.production")
    import django

    django.setup()
    from django.db import OperationalError, close_old_connections, connection

    from pesarail.common.money import Money
    from pesarail.ledger import services
    from pesarail.ledger.models import Account

    accounts = {a.pk: a for a in Account.objects.filter(pk__in=spec["accounts"])}
    wallet_ids = [pk for pk in spec["accounts"] if pk != spec.get("hot")]
    hot = accounts.get(spec["hot"]) if spec.get("hot") else None
    rng = random.Random(spec["seed"])
    rate, seconds, threads = spec["rate"], spec["seconds"], spec["threads"]
    total = int(rate * seconds)
    # pre-draw the pairs so the dispatcher does no work under load
    pairs: list[tuple[str, str]] = []
    for _ in range(total):
        if hot is not None:
            dst = rng.choice(wallet_ids)
            pairs.append((hot.pk, dst) if rng.random() < 0.5 else (dst, hot.pk))
        else:
            src, dst = rng.sample(wallet_ids, 2)
            pairs.append((src, dst))
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    money = Money(100, spec["currency"])

    stop_at = [float("inf")]  # set once the schedule is known: end + drain
    abandoned = [0]

    def worker() -> None:
        # a thread keeps its own Account objects (the service refreshes balances on them)
        mine = {pk: Account(**{f.attname: getattr(a, f.attname) for f in a._meta.concrete_fields})
                for pk, a in accounts.items()}
        while True:
            job = jobs.get()
            if job is None:
                break
            i, scheduled = job
            if time.monotonic() > stop_at[0]:
                with lock:
                    abandoned[0] += 1
                continue
            src, dst = pairs[i]
            try:
                services.transfer(source=mine[src], destination=mine[dst], money=money,
                                  idempotency_key=f"bench-s3:{spec['run']}:{spec['proc']}:{i}")
            except OperationalError as exc:
                kind = "deadlock" if "deadlock" in str(exc).lower() else "operational_error"
                with lock:
                    errors[kind] += 1
                continue
            except Exception as exc:
                with lock:
                    errors[type(exc).__name__] += 1
                continue
            done = time.monotonic()
            with lock:
                latencies.append(done - scheduled)
        close_old_connections()
        connection.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    # start together with the sibling processes (wall clock), then schedule on monotonic
    delay = spec["start_at"] - time.time()
    if delay > 0:
        time.sleep(delay)
    start = time.monotonic()
    stop_at[0] = start + seconds + spec.get("drain_seconds", 10)
    dropped = 0
    # more than ~2 s of backlog is a failure already: drop instead of queueing forever
    max_queue = spec.get("max_queue", max(100, int(rate * 2)))
    for i in range(total):
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        if jobs.qsize() >= max_queue:
            dropped += 1
            continue
        jobs.put((i, due))
    for _ in pool:
        jobs.put(None)
    for thread in pool:
        thread.join(timeout=max(0.1, stop_at[0] + 5 - time.monotonic()))
    not_finished = sum(1 for t in pool if t.is_alive())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "latencies": latencies, "errors": dict(errors), "dropped": dropped,
        "not_finished": abandoned[0],
        "scheduled": total, "wall_s": time.monotonic() - start,
        "cpu_s": usage.ru_utime + usage.ru_stime, "threads_stuck": not_finished,
    }), flush=True)
    os._exit(0)  # threads may still hold pool connections; the harness reads stdout


if __name__ == "__main__":
    main()
