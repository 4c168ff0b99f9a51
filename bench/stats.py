"""Latency summaries and the result record every scenario returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(latencies_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_s, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies_s, 99) * 1000, 2),
        "max_ms": round(max(latencies_s) * 1000, 2) if latencies_s else 0.0,
    }


@dataclass
class Result:
    """One measured line of the table (a scenario may produce several: ours, baseline)."""

    scenario: str
    name: str
    throughput_per_s: float
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    dropped: int = 0
    offered_per_s: float | None = None
    completed: int = 0
    loadgen_cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "throughput_per_s": round(self.throughput_per_s, 1),
            "offered_per_s": self.offered_per_s,
            "completed": self.completed,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "errors": self.errors,
            "dropped": self.dropped,
            "loadgen_cpu_s": round(self.loadgen_cpu_s, 2),
        }
        data.update(self.extra)
        return data
