"""Background dispatcher for the provider simulators.

One daemon thread keeps a heap of ``(due_time, seq, job)`` and sleeps on a
``threading.Condition`` until the earliest job is due. Two kinds of job exist:

* :class:`AutoAnswerJob` -- "answer this phone prompt by itself now"; handed to the
  simulator's ``on_auto_answer`` on the dispatcher thread (it only touches memory);
* :class:`CallbackJob` -- "POST this callback"; handed to a few sender threads that
  share one ``httpx.Client`` (explicit timeouts: connect 2 s, read 10 s), so one slow
  or hanging receiver cannot hold back prompt answers or other callbacks.

Every delivery attempt, successful or not, is reported through ``on_delivery`` as a
:class:`DeliveryResult`; nothing raises out of the background threads.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

__all__ = [
    "AutoAnswerJob",
    "CallbackJob",
    "DeliveryResult",
    "Job",
    "Scheduler",
]

log = logging.getLogger(__name__)

_RESPONSE_EXCERPT = 500


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every scheduler: building one (CA bundle load) costs ~50 ms,
    and callbacks almost always go to plain-HTTP loopback URLs anyway."""
    return ssl.create_default_context()


@dataclass(frozen=True)
class AutoAnswerJob:
    """Answer prompt ``checkout_request_id`` with its scripted outcome, if still open."""

    checkout_request_id: str
    generation: int


@dataclass(frozen=True)
class CallbackJob:
    """POST ``payload`` as JSON to ``url``. ``copy`` is 0 for the original, 1.. for duplicates."""

    url: str
    payload: Mapping[str, Any]
    checkout_request_id: str
    copy: int
    generation: int
    scheduled_at: float  # wall clock (time.time()) when the job was planned


Job = AutoAnswerJob | CallbackJob


@dataclass(frozen=True)
class DeliveryResult:
    job: CallbackJob
    outcome: Literal["delivered", "failed", "refused"]
    http_status: int | None
    error: str | None
    response_body: str | None
    started_at: float  # wall clock
    elapsed_seconds: float


class Scheduler:
    """A heap of timed jobs on one dispatcher thread plus a few callback sender threads.

    ``schedule`` never starts threads (so it is safe from any thread, including the
    dispatcher); call :meth:`start` (idempotent) before relying on jobs running.
    :meth:`stop` drops pending jobs and joins all threads; the scheduler can be
    started again afterwards.
    """

    def __init__(
        self,
        *,
        on_auto_answer: Callable[[AutoAnswerJob], None],
        on_delivery: Callable[[DeliveryResult], None],
        check_url: Callable[[str], str | None],
        senders: int = 4,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
        name: str = "sandbox",
    ) -> None:
        if senders < 1:
            raise ValueError("senders must be >= 1")
        self._on_auto_answer = on_auto_answer
        self._on_delivery = on_delivery
        self._check_url = check_url
        self._senders = senders
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout
        )
        self._name = name

        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._stopping = False

        self._outbox: queue.Queue[CallbackJob | None] = queue.Queue()
        self._in_flight = 0

        self._state_lock = threading.Lock()
        self._running = False
        self._dispatcher: threading.Thread | None = None
        self._sender_threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if self._running:  # fast path; re-checked under the lock
            return
        with self._state_lock:
            if self._running:
                return
            with self._cond:
                self._stopping = False
                self._in_flight = 0
            # trust_env=False: never route sandbox callbacks through an HTTP(S)_PROXY.
            self._client = httpx.Client(
                timeout=self._timeout,
                verify=_tls_context(),
                trust_env=False,
                follow_redirects=False,
                headers={"User-Agent": "pesarail-sandbox/1 (Daraja simulator)"},
                limits=httpx.Limits(max_connections=self._senders * 2),
            )
            self._dispatcher = threading.Thread(
                target=self._dispatch_loop, name=f"{self._name}-dispatcher", daemon=True
            )
            self._sender_threads = [
                threading.Thread(
                    target=self._send_loop, name=f"{self._name}-sender-{i}", daemon=True
                )
                for i in range(self._senders)
            ]
            self._dispatcher.start()
            for thread in self._sender_threads:
                thread.start()
            self._running = True

    def stop(self, timeout: float = 5.0) -> None:
        """Drop pending jobs, stop and join the threads, close the HTTP client."""
        with self._state_lock:
            if not self._running:
                return
            self._running = False
            with self._cond:
                self._stopping = True
                self._heap.clear()
                self._cond.notify_all()
            self._drain_outbox()
            for _ in self._sender_threads:
                self._outbox.put(None)
            deadline = time.monotonic() + timeout
            threads = [self._dispatcher, *self._sender_threads]
            for thread in threads:
                if thread is not None:
                    thread.join(max(0.0, deadline - time.monotonic()))
            if self._client is not None:
                self._client.close()
            self._dispatcher, self._sender_threads, self._client = None, [], None

    # -- jobs ------------------------------------------------------------------------

    def schedule(self, job: Job, delay: float = 0.0) -> None:
        """Run ``job`` ``delay`` seconds from now (0 = as soon as possible)."""
        due = time.monotonic() + max(0.0, delay)
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), job))
            self._cond.notify()

    def clear(self) -> int:
        """Drop every job not yet started; returns how many were dropped."""
        with self._cond:
            dropped = len(self._heap)
            self._heap.clear()
            self._cond.notify_all()
        return dropped + self._drain_outbox()

    def pending(self) -> int:
        """Jobs waiting in the heap or the outbox, plus callbacks being sent right now."""
        with self._cond:
            return len(self._heap) + self._outbox.qsize() + self._in_flight

    def _drain_outbox(self) -> int:
        dropped = 0
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return dropped
            if item is not None:
                dropped += 1
                with self._cond:
                    self._in_flight = max(0, self._in_flight - 1)

    # -- threads ---------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            with self._cond:
                job: Job | None = None
                while not self._stopping:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        job = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(wait)
                if job is None:  # stopping
                    return
                if isinstance(job, CallbackJob):
                    self._in_flight += 1
            self._dispatch(job)

    def _dispatch(self, job: Job) -> None:
        if isinstance(job, CallbackJob):
            self._outbox.put(job)
            return
        try:
            self._on_auto_answer(job)
        except Exception:
            log.exception("sandbox auto-answer of %s failed", job.checkout_request_id)

    def _send_loop(self) -> None:
        while True:
            job = self._outbox.get()
            if job is None:
                return
            try:
                try:
                    result = self._deliver(job)
                except Exception as exc:
                    log.exception("sandbox callback to %s crashed", job.url)
                    result = DeliveryResult(
                        job, "failed", None, f"{type(exc).__name__}: {exc}", None, time.time(), 0.0
                    )
                try:
                    self._on_delivery(result)
                except Exception:
                    log.exception("sandbox could not record a callback delivery")
            finally:
                with self._cond:
                    self._in_flight = max(0, self._in_flight - 1)

    def _deliver(self, job: CallbackJob) -> DeliveryResult:
        started = time.time()
        clock = time.monotonic()
        refusal = self._check_url(job.url)
        if refusal is not None:
            log.warning("sandbox refused callback to %s: %s", job.url, refusal)
            return DeliveryResult(job, "refused", None, refusal, None, started, 0.0)
        client = self._client
        if client is None:
            return DeliveryResult(job, "failed", None, "scheduler stopped", None, started, 0.0)
        try:
            response = client.post(job.url, json=dict(job.payload))
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            elapsed = time.monotonic() - clock
            error = f"{type(exc).__name__}: {exc}"
            log.info("sandbox callback to %s failed: %s", job.url, error)
            return DeliveryResult(job, "failed", None, error, None, started, elapsed)
        elapsed = time.monotonic() - clock
        body = response.text[:_RESPONSE_EXCERPT]
        if response.is_success:
            return DeliveryResult(
                job, "delivered", response.status_code, None, body, started, elapsed
            )
        return DeliveryResult(
            job,
            "failed",
            response.status_code,
            f"HTTP {response.status_code}",
            body,
            started,
            elapsed,
        )
