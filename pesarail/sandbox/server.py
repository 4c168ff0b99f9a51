"""A small threaded WSGI server for the provider simulators.

Standard library only (``wsgiref`` + ``socketserver``), so a simulator can run:

* in-process on a background thread, for tests and the demo
  (``SandboxServer(app).start()`` returns ``"http://127.0.0.1:PORT"``);
* standalone in the foreground (``serve_forever(app, host, port)``), which is what
  ``pesarail sandbox --provider ... --port N`` calls.

Each connection is handled on its own daemon thread, so a simulator may sleep inside a
request (latency knobs, held responses) without blocking any other request.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import WSGIApplication

__all__ = ["SandboxServer", "serve_forever"]

log = logging.getLogger(__name__)

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class _QuietRequestHandler(WSGIRequestHandler):
    """Request handler that sends access logs to ``logging`` (debug) instead of stderr."""

    # Socket timeout for one read/write; a client that connects and never sends a
    # request does not pin its thread forever.
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.client_address[0], format % args)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The listen backlog: bursts of 50+ simultaneous connections must not overflow it
    # (the stdlib default of 5 makes the kernel drop SYNs, which costs a 1 s retry).
    request_queue_size = 512

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS lookup that can
        # take seconds on a machine without network; the name is only cosmetic here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error while serving %s: %r", client_address, sys.exc_info()[1])


class _ThreadingWSGIServerV6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


def _make_server(host: str, port: int, app: WSGIApplication) -> _ThreadingWSGIServer:
    cls = _ThreadingWSGIServerV6 if ":" in host else _ThreadingWSGIServer
    server = cls((host, port), _QuietRequestHandler)
    server.set_app(app)
    return server


def _poke(server: _ThreadingWSGIServer) -> None:
    host, port = str(server.server_address[0]), int(server.server_address[1])
    if ipaddress.ip_address(host).is_unspecified:  # bound to all interfaces
        host = "::1" if ":" in host else "127.0.0.1"
    try:
        with socket.create_connection((host, port), timeout=0.2):
            pass
    except OSError:
        pass


def _base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class SandboxServer:
    """Serve one WSGI application on a background thread.

    ``port=0`` picks a free ephemeral port; :meth:`start` returns the base URL. Usable
    as a context manager (``with SandboxServer(app) as server: server.url``).
    ``on_stop`` is called after the server has stopped (used to stop a simulator's
    background threads together with its server).
    """

    def __init__(
        self,
        app: WSGIApplication,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._on_stop = on_stop
        self._server: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SandboxServer is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return _base_url(self.host, self.port)

    def start(self) -> str:
        """Bind, start serving on a daemon thread and return the base URL."""
        with self._lock:
            if self._server is None:
                server = _make_server(self.host, self._requested_port, self.app)
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.5},
                    name=f"sandbox-server-{server.server_address[1]}",
                    daemon=True,
                )
                thread.start()
                self._server, self._thread = server, thread
        return self.url

    def stop(self) -> None:
        """Stop accepting requests, close the socket and join the serving thread."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        # shutdown() waits for the serving loop's next poll; a throwaway connection
        # wakes its select() at once, so stopping takes milliseconds, not poll_interval.
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        while stopper.is_alive():
            _poke(server)
            stopper.join(0.02)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if self._on_stop is not None:
            self._on_stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<SandboxServer {where}>"


def _announce(url: str) -> None:
    sys.stdout.write(f"sandbox listening on {url}\n")
    sys.stdout.flush()


def serve_forever(
    app: WSGIApplication,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[str], None] | None = _announce,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` in the foreground until interrupted (Ctrl-C).

    ``on_ready`` receives the base URL once the socket is bound (default: print it).
    ``on_stop`` runs on the way out (e.g. a simulator's ``stop``).
    """
    if host not in _LOOPBACK_HOSTS:
        log.warning("sandbox bound to %s: it is reachable from other machines", host)
    server = _make_server(host, port, app)
    try:
        if on_ready is not None:
            on_ready(_base_url(host, int(server.server_address[1])))
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if on_stop is not None:
            on_stop()
