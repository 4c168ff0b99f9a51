"""PostgreSQL, the bench database, the environment and the servers under test.

Everything the harness starts is a child process in its own process group; ``Procs``
stops them (TERM, then KILL) when the run ends, on an exception and on Ctrl-C.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
BENCH_DB = "pesarail_bench"
DATABASE_URL = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{BENCH_DB}"


def venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise SystemExit(f"bench: {name} not found (install the PostgreSQL server packages)")


def psql(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(
        [pg_bin("psql"), "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", db,
         "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def ensure_postgres() -> None:
    """Start the local cluster when nothing answers on 127.0.0.1:5432."""
    if _port_open(PG_HOST, PG_PORT):
        return
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        raise SystemExit("bench: PostgreSQL is not running and no local cluster was found")
    print(f"bench: starting PostgreSQL {versions[-1]}", flush=True)
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main",
                    "start"], check=True)
    _wait_port(PG_HOST, PG_PORT, 30)


_exclusive: Any = None


def exclusive() -> None:
    """Hold the machine's one benchmark lock until this process exits.

    Two runs at once would measure each other, and both drop and recreate the same
    ``pesarail_bench`` database: a second run waits here for the first to end."""
    global _exclusive
    import fcntl
    import tempfile

    if _exclusive is not None:
        return
    handle = open(Path(tempfile.gettempdir()) / "pesarail-bench.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("bench: another benchmark is running on this machine; waiting for it",
              flush=True)
        fcntl.flock(handle, fcntl.LOCK_EX)
    _exclusive = handle


def recreate_database() -> None:
    exclusive()
    psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {BENCH_DB}")


def drop_database() -> None:
    try:
        psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    except subprocess.CalledProcessError:
        pass


def pg_settings() -> dict[str, str]:
    names = ["server_version", "fsync", "synchronous_commit", "wal_sync_method",
             "full_page_writes", "shared_buffers", "max_connections", "wal_level",
             "commit_delay", "checkpoint_timeout", "max_wal_size"]
    rows = psql("SELECT name || '=' || setting || coalesce(unit, '') FROM pg_settings "
                f"WHERE name IN ({', '.join(repr(n) for n in names)}) ORDER BY name")
    return dict(line.split("=", 1) for line in rows.splitlines())


def pg_deadlocks() -> int:
    return int(psql(f"SELECT deadlocks FROM pg_stat_database WHERE datname = '{BENCH_DB}'"))


def bench_env(home: Path, base_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every pesarail process in a run (production settings)."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("PESARAIL_") or name in {"DJANGO_SETTINGS_MODULE",
                                                    "PROMETHEUS_MULTIPROC_DIR"}:
            env.pop(name)
    env.update({
        "PESARAIL_ENV": "production",
        "PESARAIL_HOME": str(home),
        "DATABASE_URL": DATABASE_URL,
        "PESARAIL_SECRET_KEY": _SECRET_KEY,
        "PESARAIL_ENCRYPTION_KEYS": _ENCRYPTION_KEY,
        "PESARAIL_BASE_URL": base_url,
        "PESARAIL_SANDBOX_ENABLED": "true",
        "PESARAIL_LOG_LEVEL": "WARNING",
        # One merchant key drives the whole load; the default per-key limit (6000/min)
        # is a policy knob, not a capacity, so it is lifted for the run.
        "PESARAIL_API_THROTTLE_RATE": "10000000/min",
        "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    env.update(extra or {})
    return env


_SECRET_KEY = secrets.token_urlsafe(48)
_ENCRYPTION_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_port(host: str, port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return
        time.sleep(0.1)
    raise SystemExit(f"bench: nothing listening on {host}:{port} after {seconds:.0f} s")


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # loopback only
        return json.loads(resp.read() or b"null")


class Procs:
    """Child processes of this run; all stopped by :meth:`stop_all`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], *,
              pipe: bool = False) -> subprocess.Popen[bytes]:
        """Start ``argv``; its output goes to ``logs/<name>.log`` (stderr only when
        ``pipe``: then stdin and stdout are pipes for the caller)."""
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if pipe else None,
                                stdout=subprocess.PIPE if pipe else log,
                                stderr=log if pipe else subprocess.STDOUT,
                                start_new_session=True, cwd=str(REPO))
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C so ``finally`` blocks tear everything down."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info
