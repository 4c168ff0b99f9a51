"""``pesarail worker``: it starts, registers the schedule, runs tasks, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger

ROOT = Path(__file__).resolve().parents[2]


def test_schedule_registers_reconcile_pending_every_minute() -> None:
    from crontask import scheduler

    from pesarail.payments.management.commands.worker import load_task_modules

    assert "pesarail.payments" in load_task_modules()
    jobs = {job.name: job for job in scheduler.get_jobs()}
    job = jobs["reconcile_pending"]
    assert isinstance(job.trigger, CronTrigger)
    fields = {field.name: str(field) for field in job.trigger.fields}
    assert (fields["minute"], fields["hour"], fields["day"]) == ("*", "*", "*")
    from pesarail.payments import tasks

    assert job.func == tasks.reconcile_pending.enqueue


# One process, one Django start-up: create the task table of a throw-away SQLite
# database (not the test database), then run the real ``pesarail worker`` entry point.
SCRIPT = """
import sys
from pesarail.cli import main
main(["migrate", "django_tasks_database", "--no-input", "-v", "0"])
sys.exit(main(["worker", "--interval", "0.2"]))
"""


def test_worker_command_starts_and_stops_cleanly(tmp_path: Path) -> None:
    """SIGTERM (what systemd, Docker and Kubernetes send; Ctrl-C takes the same path)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PESARAIL_HOME=str(tmp_path), DJANGO_SETTINGS_MODULE="pesarail.settings.test",
               PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "pesarail worker running" in line or not line:
                break
        assert any("pesarail worker running" in line for line in lines), "".join(lines)
        assert any("reconcile_pending" in line for line in lines), "".join(lines)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, "".join(lines) + out
    assert "shutting down" in out and "pesarail worker stopped." in out
