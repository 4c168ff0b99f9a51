"""One module per scenario; each has ``run(ctx) -> ScenarioReport``."""

from bench.scenarios import s0, s1, s2, s3, s4

__all__ = ["s0", "s1", "s2", "s3", "s4"]
