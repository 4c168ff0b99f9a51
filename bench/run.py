"""``python -m bench.run SCENARIO [--seconds N]``: run pesarail's benchmarks.

SCENARIO is one of S0 S1 S2 S3 S4 all. Every invocation starts from a fresh
``pesarail_bench`` database on the local PostgreSQL (started if down), runs the
scenario's anchor (S0, pgbench) in the same run where the scenario asks for it, starts
the servers under test as child processes (the real ``pesarail serve``, the Daraja
sandbox, the naive baseline), drives them from 127.0.0.1, runs the correctness checks,
prints a table and writes ``$PESARAIL_HOME/bench/<SCENARIO>.json``. Everything started is
torn down at the end, also on Ctrl-C. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import infra
from bench.stats import Result

SCENARIOS = ("S0", "S1", "S2", "S3", "S4")
NEEDS_S0 = {"S2", "S3"}
HARD_STOP_SECONDS = 290  # per scenario; the issue asks for < 5 minutes


@dataclass
class Context:
    args: argparse.Namespace
    home: Path
    out_dir: Path
    procs: infra.Procs
    run_id: str
    seconds: float
    pgbench_tps: float | None = None
    notes: list[str] = field(default_factory=list)
    django_ready: bool = False

    def env(self, base_url: str = "http://127.0.0.1:8000", **extra: str) -> dict[str, str]:
        return infra.bench_env(self.home, base_url, extra)

    def setup_django(self) -> None:
        """Configure Django in this (harness) process against the bench database, for
        seeding and the checks."""
        if self.django_ready:
            return
        for name, value in self.env().items():
            if name.startswith("PESARAIL_") or name == "DATABASE_URL":
                os.environ[name] = value
        os.environ["DJANGO_SETTINGS_MODULE"] = "pesarail.settings.production"
        import django

        django.setup()
        self.django_ready = True


@dataclass
class ScenarioReport:
    scenario: str
    title: str
    results: list[Result]
    invariants: dict[str, Any]
    config: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)

    @property
    def invariants_ok(self) -> bool:
        return all(bool(v.get("ok")) for v in self.invariants.values())

    @property
    def errors(self) -> int:
        return sum(r.errors + r.dropped for r in self.results)

    @property
    def passed(self) -> bool:
        return self.invariants_ok and self.errors == 0


class HardStop(BaseException):
    """A scenario ran past the hard stop. A BaseException, so that no ``except
    Exception`` in the code under test (e.g. a reconciler loop) can swallow it."""


def _alarm(signum: int, frame: Any) -> None:
    raise HardStop(f"bench: scenario exceeded the hard stop of {HARD_STOP_SECONDS} s")


def run_scenario(ctx: Context, scenario: str) -> ScenarioReport:
    from bench import scenarios

    module = getattr(scenarios, scenario.lower())
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HARD_STOP_SECONDS)
    try:
        return module.run(ctx)
    finally:
        signal.alarm(0)
        ctx.procs.stop_all()


def write_report(ctx: Context, name: str, reports: list[ScenarioReport],
                 header: dict[str, Any]) -> Path:
    path = ctx.out_dir / f"{name}.json"
    data: dict[str, Any] = dict(header)
    data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    data["load_average_end"] = infra.load_average()
    data["pass"] = all(r.passed for r in reports)
    data["scenarios"] = {}
    for report in reports:
        main = report.results[0] if report.results else None
        entry: dict[str, Any] = {
            "title": report.title,
            "pass": report.passed,
            "throughput_per_s": round(main.throughput_per_s, 1) if main else 0.0,
            "p50_ms": main.p50_ms if main else 0.0,
            "p99_ms": main.p99_ms if main else 0.0,
            "errors": report.errors,
            "invariants_ok": report.invariants_ok,
            "invariants": report.invariants,
            "config": report.config,
            "loadgen_cpu_s": round(sum(r.loadgen_cpu_s for r in report.results), 2),
            "results": [r.as_dict() for r in report.results],
            "targets": report.targets,
        }
        entry.update(report.figures)
        data["scenarios"][report.scenario] = entry
    if name in data["scenarios"]:  # a scenario's own file carries its figures on top
        data.update({k: v for k, v in data["scenarios"][name].items() if k != "pass"})
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def print_table(reports: list[ScenarioReport]) -> None:
    cols = ["scenario", "line", "offered/s", "done/s", "p50 ms", "p99 ms", "errors",
            "dropped", "gen CPU s"]
    rows = []
    for report in reports:
        for r in report.results:
            rows.append([report.scenario, r.name,
                         "-" if r.offered_per_s is None else f"{r.offered_per_s:g}",
                         f"{r.throughput_per_s:,.1f}", f"{r.p50_ms:,.1f}", f"{r.p99_ms:,.1f}",
                         str(r.errors), str(r.dropped), f"{r.loadgen_cpu_s:.1f}"])
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    print("\n" + line + "\n" + "-" * len(line))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print()
    for report in reports:
        for key, value in report.figures.items():
            print(f"{report.scenario} {key}: {value}")
        for target in report.targets:
            mark = "met" if target["met"] else "MISSED"
            print(f"{report.scenario} target {target['target']}: {mark} ({target['measured']})")
        bad = [name for name, v in report.invariants.items() if not v.get("ok")]
        status = "PASS" if report.passed else "FAIL"
        why = []
        if report.errors:
            why.append(f"{report.errors} errors/drops")
        if bad:
            why.append("invariants failed: " + ", ".join(bad))
        print(f"{report.scenario}: {status}" + (f" ({'; '.join(why)})" if why else
                                                " (invariants: " + ", ".join(report.invariants)
                                                + ")"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pesarail bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"],
                        type=lambda s: s if s == "all" else s.upper())
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measured seconds per load phase (default 10, at most 30, so "
                             "that every scenario ends well within its 290 s hard stop)")
    parser.add_argument("--rate", type=float, default=None,
                        help="override the offered rate of the scenario's main phase")
    parser.add_argument("--profile", action="store_true",
                        help="run the servers under pyinstrument (S1/S2/S4) or profile an "
                             "S3 worker; writes HTML next to the JSON")
    parser.add_argument("--keep-db", action="store_true",
                        help="keep the pesarail_bench database after the run")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 30:
        parser.error("--seconds must be between 1 and 30")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = Path(os.environ.get("PESARAIL_HOME") or infra.REPO / ".pesarail").resolve()
    out_dir = home / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(exist_ok=True)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    ctx = Context(args=args, home=home, out_dir=out_dir, procs=infra.Procs(out_dir / "logs"),
                  run_id=run_id, seconds=args.seconds)
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    header: dict[str, Any] = {
        "scenario": args.scenario,
        "run_id": run_id,
        "seconds": args.seconds,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_start": infra.load_average(),
        "machine": infra.machine(),
        "command": "pesarail bench " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    print(f"bench {args.scenario}: {args.seconds:g} s per phase, load average at start "
          f"{header['load_average_start']}", flush=True)
    reports: list[ScenarioReport] = []
    with infra.interrupts_as_exceptions():
        try:
            infra.ensure_postgres()
            header["postgres"] = infra.pg_settings()
            infra.recreate_database()
            _migrate(ctx)
            if any(s in NEEDS_S0 for s in scenarios) and "S0" not in scenarios:
                scenarios.insert(0, "S0")
            for scenario in scenarios:
                started = time.monotonic()
                print(f"--- {scenario}", flush=True)
                report = run_scenario(ctx, scenario)
                report.figures["wall_seconds"] = round(time.monotonic() - started, 1)
                reports.append(report)
                # written at once, so an interrupted `all` keeps what it measured
                write_report(ctx, scenario, [report], header)
        except KeyboardInterrupt:
            print("bench: interrupted; stopping everything", file=sys.stderr)
            return 130
        except HardStop as exc:
            print(f"{exc}; stopping everything. FAIL", file=sys.stderr)
            return 124
        finally:
            ctx.procs.stop_all()
            if not args.keep_db:
                infra.drop_database()
    header["pgbench_tps"] = ctx.pgbench_tps
    header["notes"] = ctx.notes
    print_table(reports)
    path = write_report(ctx, args.scenario, reports, header)
    if args.scenario == "all":
        for report in reports:
            write_report(ctx, report.scenario, [report], header)
    ok = all(r.passed for r in reports)
    print(f"\n{'PASS' if ok else 'FAIL'}: wrote {path}")
    return 0 if ok else 1


def _migrate(ctx: Context) -> None:
    import subprocess

    t = time.monotonic()
    subprocess.run([infra.venv_bin("pesarail"), "migrate", "--no-input", "-v", "0"],
                   env=ctx.env(), check=True, cwd=str(infra.REPO))
    print(f"bench: migrated {infra.BENCH_DB} in {time.monotonic() - t:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
