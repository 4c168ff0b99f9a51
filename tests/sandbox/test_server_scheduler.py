"""SandboxServer, the Scheduler and the config/latency value types."""

from __future__ import annotations

import json
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from pesarail.sandbox.daraja import (
    DEFAULT_APP,
    DarajaApp,
    DarajaConfig,
    LatencySpec,
    run_daraja,
)
from pesarail.sandbox.scheduler import (
    AutoAnswerJob,
    CallbackJob,
    DeliveryResult,
    Scheduler,
)
from pesarail.sandbox.server import SandboxServer

from .conftest import Receiver


def slow_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    time.sleep(0.3)
    body = json.dumps({"path": environ["PATH_INFO"]}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def test_server_start_stop_and_context_manager() -> None:
    with SandboxServer(slow_app) as server:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        assert server.port > 0
        assert httpx.get(url + "/x", trust_env=False).json() == {"path": "/x"}
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/x", trust_env=False, timeout=1)
    with pytest.raises(RuntimeError):
        _ = server.url


def test_server_handles_sixty_concurrent_slow_requests() -> None:
    with (
        SandboxServer(slow_app) as server,
        httpx.Client(
            trust_env=False, timeout=5, limits=httpx.Limits(max_connections=100)
        ) as client,
    ):
        barrier = threading.Barrier(60)

        def one(i: int) -> int:
            barrier.wait()
            return client.get(f"{server.url}/{i}").status_code

        started = time.monotonic()
        with ThreadPoolExecutor(60) as pool:
            codes = list(pool.map(one, range(60)))
        elapsed = time.monotonic() - started
    assert codes == [200] * 60
    assert elapsed < 2.0  # 60 x 0.3 s would be 18 s if serialised


def test_server_on_stop_and_run_daraja() -> None:
    server, sim = run_daraja()
    assert sim.health()["background_running"] is True
    response = httpx.get(server.url + "/_sandbox/health", trust_env=False)
    assert response.json()["apps"] == [DEFAULT_APP.public_dict()]
    server.stop()
    assert sim.health()["background_running"] is False


class Recorder:
    def __init__(self) -> None:
        self.answers: list[tuple[str, float]] = []
        self.results: list[DeliveryResult] = []
        self.cond = threading.Condition()

    def on_answer(self, job: AutoAnswerJob) -> None:
        with self.cond:
            self.answers.append((job.checkout_request_id, time.monotonic()))
            self.cond.notify_all()
        if job.checkout_request_id == "boom":
            raise RuntimeError("handler bug")

    def on_delivery(self, result: DeliveryResult) -> None:
        with self.cond:
            self.results.append(result)
            self.cond.notify_all()

    def wait(self, answers: int = 0, results: int = 0, timeout: float = 5) -> None:
        with self.cond:
            self.cond.wait_for(
                lambda: len(self.answers) >= answers and len(self.results) >= results, timeout
            )


def make_scheduler(rec: Recorder) -> Scheduler:
    return Scheduler(
        on_auto_answer=rec.on_answer,
        on_delivery=rec.on_delivery,
        check_url=lambda url: None if "127.0.0.1" in url else "refused",
    )


def callback_job(url: str) -> CallbackJob:
    return CallbackJob(url, {"hello": "world"}, "ws_CO_1", 0, 1, time.time())


def test_scheduler_runs_jobs_in_due_order_and_survives_errors() -> None:
    rec = Recorder()
    scheduler = make_scheduler(rec)
    scheduler.start()
    try:
        t0 = time.monotonic()
        scheduler.schedule(AutoAnswerJob("late", 1), 0.3)
        scheduler.schedule(AutoAnswerJob("boom", 1), 0.0)
        scheduler.schedule(AutoAnswerJob("early", 1), 0.1)
        rec.wait(answers=3)
        assert [name for name, _ in rec.answers] == ["boom", "early", "late"]
        assert rec.answers[2][1] - t0 >= 0.3
        assert scheduler.running  # the failing handler did not kill the thread
    finally:
        scheduler.stop()
    assert not scheduler.running


def test_scheduler_delivers_and_records_failures(receiver: Receiver) -> None:
    rec = Recorder()
    scheduler = make_scheduler(rec)
    scheduler.start()
    try:
        scheduler.schedule(callback_job(receiver.url("/cb")))
        scheduler.schedule(callback_job("http://example.com/cb"))
        scheduler.schedule(callback_job("http://127.0.0.1:9/closed"))
        rec.wait(results=3)
    finally:
        scheduler.stop()
    by_url = {r.job.url: r for r in rec.results}
    assert by_url[receiver.url("/cb")].outcome == "delivered"
    assert receiver.calls[0].body == {"hello": "world"}
    assert (by_url["http://example.com/cb"].outcome, by_url["http://example.com/cb"].error) == (
        "refused",
        "refused",
    )
    assert by_url["http://127.0.0.1:9/closed"].outcome == "failed"


def test_scheduler_stop_joins_and_drops_pending() -> None:
    rec = Recorder()
    scheduler = make_scheduler(rec)
    scheduler.start()
    scheduler.schedule(AutoAnswerJob("never", 1), 0.5)
    assert scheduler.pending() == 1
    before = {t.name for t in threading.enumerate()}
    assert any(name.startswith("sandbox-dispatcher") for name in before)
    scheduler.stop()
    after = {t.name for t in threading.enumerate()}
    assert not any(name.startswith(("sandbox-dispatcher", "sandbox-sender")) for name in after)
    assert scheduler.pending() == 0
    time.sleep(0.6)
    assert rec.answers == []
    scheduler.start()  # restartable
    scheduler.schedule(AutoAnswerJob("again", 1))
    rec.wait(answers=1)
    scheduler.stop()
    assert rec.answers[0][0] == "again"


def test_scheduler_clear() -> None:
    rec = Recorder()
    scheduler = make_scheduler(rec)
    scheduler.start()
    try:
        scheduler.schedule(AutoAnswerJob("a", 1), 0.3)
        scheduler.schedule(AutoAnswerJob("b", 1), 0.3)
        assert scheduler.clear() == 2
        time.sleep(0.4)
        assert rec.answers == []
    finally:
        scheduler.stop()


def test_latency_spec_lognormal_matches_median_and_p99() -> None:
    spec = LatencySpec(fixed=0.1, median=0.2, p99=1.0)
    rng = random.Random(42)
    samples = sorted(spec.sample(rng) for _ in range(20000))
    assert statistics.median(samples) == pytest.approx(0.3, rel=0.05)
    assert samples[int(0.99 * len(samples))] == pytest.approx(1.1, rel=0.1)
    assert min(samples) >= 0.1
    assert max(samples) <= 0.1 + 10 * 1.0
    assert LatencySpec(0.25).sample(rng) == 0.25


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fixed": -1},
        {"median": 0.1},
        {"median": 0.5, "p99": 0.1},
        {"median": 0, "p99": 0.1},
    ],
)
def test_latency_spec_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"latency|fixed|median|p99"):
        LatencySpec(**kwargs)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="distinct consumer keys"):
        DarajaConfig(apps=(DEFAULT_APP, DarajaApp(DEFAULT_APP.consumer_key, "s", "1", "p", "x")))
    with pytest.raises(ValueError, match="non-empty"):
        DarajaConfig(apps=())
    with pytest.raises(TypeError):
        DarajaConfig(lose_callbacks=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shortcode"):
        DarajaApp("k", "s", "12ab", "p")
    assert DarajaApp("k", "s", 600000, "p").shortcode == "600000"  # type: ignore[arg-type]
    assert DarajaConfig(push_fault=500).push_fault == "500"  # type: ignore[arg-type]
    assert DarajaConfig(stkpush_latency=0.5).stkpush_latency == LatencySpec(fixed=0.5)  # type: ignore[arg-type]


def test_standalone_main_serves_until_interrupted() -> None:
    """``python -m pesarail.sandbox.daraja`` = serve_forever in the foreground."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pesarail.sandbox.daraja", "--port", "0", "--auto-answer", "7"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"sandbox listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        url = match.group(1)
        config = httpx.get(url + "/_sandbox/config", trust_env=False, timeout=5).json()
        assert config["auto_answer_seconds"] == 7.0
        token = httpx.get(
            url + "/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=(DEFAULT_APP.consumer_key, DEFAULT_APP.consumer_secret),
            trust_env=False,
        )
        assert token.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
