"""A light open-model HTTP load generator (asyncio, HTTP/1.1 keep-alive, 127.0.0.1 only).

Open model: request ``i`` is *scheduled* at ``t0 + i / rate`` whatever happened to the
earlier ones, and its latency is measured from that scheduled time, so a server that
falls behind shows it as latency (no coordinated omission). A request that cannot start
because ``max_inflight`` requests are already waiting is *dropped* and counted.

Why not httpx: the generator shares the 2 cores with the server under test, and a bare
asyncio stream client costs a fraction of httpx's CPU per request (the harness records
the generator's CPU either way, see ``loadgen_cpu_s``). The HTTP it speaks is the small
subset gunicorn answers with: status line, headers, ``Content-Length`` or chunked body.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.stats import summarize_ms


@dataclass
class Req:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tag: Any = None  # carried to the callback


@dataclass
class Resp:
    status: int
    body: bytes


@dataclass
class StreamStats:
    name: str
    rate: float
    scheduled: int = 0
    completed: int = 0
    ok: int = 0
    dropped: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # successful requests only
    first_at: float = 0.0
    last_done: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def throughput(self, seconds: float) -> float:
        return self.ok / seconds if seconds > 0 else 0.0

    def summary(self, seconds: float) -> dict[str, Any]:
        return {
            "offered_per_s": self.rate,
            "scheduled": self.scheduled,
            "ok": self.ok,
            "dropped": self.dropped,
            "errors": self.error_count,
            "error_kinds": dict(self.errors),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "throughput_per_s": round(self.throughput(seconds), 1),
            **summarize_ms(self.latencies),
        }


class _Pool:
    """Keep-alive connections to one host:port."""

    def __init__(self, host: str, port: int) -> None:
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError("the load generator only talks to loopback")
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self.idle:
            reader, writer = self.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**20)
        self.opened += 1
        return reader, writer, False

    def release(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.idle.append((reader, writer))

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status_text = lines[0].split(" ", 2)[:2]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return int(status_text), body, keep


def _encode(req: Req, host: str, port: int) -> bytes:
    body = req.body or b""
    lines = [f"{req.method} {req.path} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in req.headers.items():
        lines.append(f"{name}: {value}")
    if req.body is not None or req.method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def request(pool: _Pool, req: Req, timeout: float) -> Resp:
    """One request; retried once on a fresh connection when a reused keep-alive
    connection turns out to have been closed by the server before answering."""
    data = _encode(req, pool.host, pool.port)
    for attempt in range(2):
        reader, writer, reused = await pool.acquire()
        try:
            writer.write(data)
            await writer.drain()
            status, body, keep = await asyncio.wait_for(_read_response(reader), timeout)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            writer.close()
            if reused and attempt == 0:
                continue
            raise
        except BaseException:
            writer.close()
            raise
        if keep:
            pool.release(reader, writer)
        else:
            writer.close()
        return Resp(status, body)
    raise ConnectionError("unreachable")


Builder = Callable[[int], Req | None]
Checker = Callable[[Req, Resp], str | None]  # None = success, else an error kind


async def open_loop(
    *,
    name: str,
    host: str,
    port: int,
    rate: float,
    seconds: float,
    build: Builder,
    check: Checker | None = None,
    max_inflight: int = 2000,
    timeout: float = 15.0,
    drain_seconds: float = 15.0,
    t0: float | None = None,
) -> StreamStats:
    """Send ``rate`` requests per second for ``seconds`` seconds (open model)."""
    stats = StreamStats(name=name, rate=rate)
    pool = _Pool(host, port)
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = t0 if t0 is not None else loop.time()
    stats.first_at = start
    inflight: set[asyncio.Task[None]] = set()

    async def one(req: Req, scheduled: float) -> None:
        try:
            resp = await request(pool, req, timeout)
        except TimeoutError:
            stats.errors["timeout"] += 1
            return
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            stats.errors[type(exc).__name__] += 1
            return
        finally:
            stats.completed += 1
        done = loop.time()
        stats.last_done = max(stats.last_done, done)
        stats.statuses[resp.status] += 1
        problem = check(req, resp) if check else (None if resp.status < 400 else
                                                   f"http_{resp.status}")
        if problem:
            stats.errors[problem] += 1
            return
        stats.ok += 1
        stats.latencies.append(done - scheduled)

    i = 0
    while i < total:
        now = loop.time()
        due = start + i / rate
        if due > now:
            await asyncio.sleep(due - now)
            continue
        # launch everything that is due (keeps up at high rates despite timer granularity)
        while i < total and start + i / rate <= now:
            scheduled = start + i / rate
            req = build(i)
            i += 1
            if req is None:
                continue
            stats.scheduled += 1
            if len(inflight) >= max_inflight:
                stats.dropped += 1
                continue
            task = loop.create_task(one(req, scheduled))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
    if inflight:
        _, pending = await asyncio.wait(set(inflight), timeout=drain_seconds)
        for task in pending:
            task.cancel()
            stats.errors["not_finished"] += 1
    pool.close()
    return stats


def run_streams(streams: list[dict[str, Any]]) -> tuple[list[StreamStats], float, float]:
    """Run several open loops at once in one event loop. Returns the stats, the wall
    seconds of the schedule and the generator's own CPU seconds."""

    async def main() -> list[StreamStats]:
        t0 = asyncio.get_running_loop().time() + 0.05
        return list(await asyncio.gather(*(open_loop(t0=t0, **s) for s in streams)))

    cpu0, wall0 = time.process_time(), time.monotonic()
    results = asyncio.run(main())
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    return results, wall, cpu
