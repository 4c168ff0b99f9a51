"""``pesarail worker``: run background tasks and the periodic scheduler together.

* the **worker** is django-tasks-db's ``db_worker`` loop (it claims tasks with
  ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL), on the main thread;
* the **scheduler** is django-crontask's APScheduler, on a second thread: every
  ``@cron`` task of every installed app's ``tasks`` module is enqueued on schedule
  (``pesarail.payments.tasks.reconcile_pending`` every minute).

SIGTERM or Ctrl-C stops both cleanly: the scheduler stops enqueueing, the worker
finishes the task it is running (a second signal aborts it), then the command exits 0.
Several workers are safe (each task is claimed by one), but the schedule should run
once: give every host but one ``--no-scheduler``.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from types import FrameType
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandParser
from django.utils.crypto import get_random_string
from django.utils.module_loading import module_has_submodule


def load_task_modules() -> list[str]:
    """Import ``<app>.tasks`` of every installed app (registers ``@cron`` jobs)."""
    loaded = []
    for config in apps.get_app_configs():
        if config.name == "crontask":
            continue  # its heartbeat job is noise
        if module_has_submodule(config.module, "tasks"):
            importlib.import_module(f"{config.name}.tasks")
            loaded.append(config.name)
    return loaded


class Command(BaseCommand):
    help = "Run the background task worker and the periodic scheduler (Ctrl-C stops both)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue-name", default="default",
                            help="Queues to process, comma separated, or '*' (default: "
                                 "%(default)s).")
        parser.add_argument("--interval", type=float, default=1.0,
                            help="Seconds between polls when the queue is empty.")
        parser.add_argument("--no-scheduler", action="store_true",
                            help="Run only the worker (e.g. on extra hosts).")
        parser.add_argument("--no-worker", action="store_true",
                            help="Run only the scheduler.")
        parser.add_argument("--batch", action="store_true",
                            help="Run every task that is ready, then exit (no scheduler).")

    def handle(self, *args: Any, **options: Any) -> None:
        from crontask import scheduler
        from django_tasks_db.management.commands.db_worker import Worker

        loaded = load_task_modules()
        self.stdout.write(f"Loaded tasks from: {', '.join(loaded) or 'none'}.")
        run_worker = not options["no_worker"]
        run_scheduler = not options["no_scheduler"] and not options["batch"]
        worker = Worker(
            queue_names=options["queue_name"].split(","), interval=options["interval"],
            batch=options["batch"], backend_name="default", startup_delay=False,
            max_tasks=None, worker_id=get_random_string(32), excluded_queue_names=[],
        )
        stopping = threading.Event()
        scheduler_thread: threading.Thread | None = None

        def stop(signum: int, frame: FrameType | None) -> None:
            if stopping.is_set():
                self.stderr.write("Second signal: exiting now.")
                sys.exit(1)
            self.stdout.write(f"Received {signal.Signals(signum).name}; shutting down…")
            stopping.set()
            worker.running = False

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}

        if run_scheduler:
            jobs = ", ".join(sorted(job.name for job in scheduler.get_jobs()))
            self.stdout.write(f"Scheduler: {jobs or 'no jobs'}.")
            scheduler_thread = threading.Thread(target=scheduler.start, name="pesarail-scheduler",
                                                daemon=True)
            scheduler_thread.start()
        self.stdout.write(self.style.SUCCESS(
            f"pesarail worker running (worker={'on' if run_worker else 'off'}, "
            f"scheduler={'on' if run_scheduler else 'off'})."))
        try:
            if run_worker:
                worker.run()
            else:
                stopping.wait()
        finally:
            if scheduler_thread is not None:
                if scheduler.running:
                    scheduler.shutdown(wait=False)
                scheduler_thread.join(timeout=5)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stdout.write("pesarail worker stopped.")
