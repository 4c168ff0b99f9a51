"""Run many ledger calls at once from real threads, each with its own database
connection, and classify what happened to each."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import OperationalError, connection

from pesarail.common.errors import Conflict
from pesarail.ledger.services import InsufficientFunds

# PostgreSQL is shared (max_connections 100): a bounded pool of threads, all released at
# once by a barrier so the calls really overlap.
WORKERS = 16


@dataclass
class Outcome:
    results: list[Any] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def kinds(self) -> Counter[str]:
        counts: Counter[str] = Counter(ok=len(self.results))
        for error in self.errors:
            counts[classify(error)] += 1
        return counts

    def summary(self) -> str:
        kinds = self.kinds
        return (f"{sum(kinds.values())} calls -> {kinds['ok']} ok, "
                f"{kinds['insufficient_funds']} refused, {kinds['conflict']} conflict, "
                f"{kinds['deadlock']} deadlocks, {kinds['other']} other errors, "
                f"{self.seconds:.2f} s on {WORKERS} threads")


def classify(error: BaseException) -> str:
    if isinstance(error, InsufficientFunds):
        return "insufficient_funds"
    if isinstance(error, Conflict):
        return "conflict"
    if isinstance(error, OperationalError) and "deadlock" in str(error).lower():
        return "deadlock"
    return "other"


def run_concurrently(jobs: Sequence[Callable[[], Any]], workers: int = WORKERS) -> Outcome:
    outcome = Outcome()
    lock = threading.Lock()
    pending = list(reversed(jobs))
    workers = min(workers, len(jobs))
    barrier = threading.Barrier(workers)

    def work() -> None:
        try:
            barrier.wait()
            while True:
                with lock:
                    if not pending:
                        return
                    job = pending.pop()
                try:
                    result = job()
                except Exception as exc:
                    with lock:
                        outcome.errors.append(exc)
                else:
                    with lock:
                        outcome.results.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    outcome.seconds = time.perf_counter() - started
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return outcome
