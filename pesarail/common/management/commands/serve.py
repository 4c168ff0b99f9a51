"""``pesarail serve``: gunicorn with threaded workers (provider calls wait on I/O, so
threads, not processes, carry the concurrency). This is the configuration benchmarks use."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve the web app with gunicorn (gthread workers)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("PESARAIL_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=int(os.environ.get(
            "PESARAIL_WORKERS", "2")))
        # Threads per worker. A payment initiation waits about a second on the
        # provider's STK push with no CPU and no database connection held (see
        # payments.services.release_db_connection), so the thread count, not the CPU,
        # would otherwise cap initiations in flight: workers x threads >= rate x latency.
        parser.add_argument("--threads", type=int, default=int(os.environ.get(
            "PESARAIL_THREADS", "64")))
        parser.add_argument("--timeout", type=int, default=60)

    def handle(self, *args: Any, **options: Any) -> None:
        from gunicorn.app.base import BaseApplication

        from pesarail.wsgi import application

        config = {
            "bind": f"{options['host']}:{options['port']}",
            "workers": options["workers"],
            "threads": options["threads"],
            "worker_class": "gthread",
            "timeout": options["timeout"],
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": settings.LOG_LEVEL.lower(),
        }

        class _App(BaseApplication):
            def load_config(self) -> None:
                for key, value in config.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                return application

        _App().run()
