"""The ``pesarail`` console script: a thin front for Django management commands.

``pesarail create-merchant`` is ``manage.py create_merchant``; every other Django
command works too. Settings: ``pesarail demo`` always uses the demo settings; other
commands use ``DJANGO_SETTINGS_MODULE`` if set, else ``PESARAIL_ENV`` (``production``
by default, or ``demo``/``test``).
"""

from __future__ import annotations

import os
import sys

HELP = """usage: pesarail COMMAND [options]

pesarail: a self-hosted payments gateway for African mobile money and cards.

Commands:
  demo                 migrate, create a demo merchant and key, start the web app,
                       worker and sandbox, print the URLs (uses the demo settings)
  serve                run the web app under gunicorn (threads; see --help)
  worker               run background tasks and the periodic scheduler
  sandbox              run a provider simulator on its own port
  migrate              apply database migrations
  create-merchant NAME create a merchant and its first secret key (--json)
  generate-encryption-key
                       print a new key for PESARAIL_ENCRYPTION_KEYS
  createsuperuser      create a platform operator for /admin/
  ...                  and every other Django management command

Settings: PESARAIL_ENV=production|demo (default production), or DJANGO_SETTINGS_MODULE.
Run 'pesarail COMMAND --help' for a command's options.
"""

ENVIRONMENTS = {
    "production": "pesarail.settings.production",
    "demo": "pesarail.settings.demo",
    "test": "pesarail.settings.test",
}


def settings_module_for(command: str) -> str:
    if command == "demo":
        return ENVIRONMENTS["demo"]
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        return os.environ["DJANGO_SETTINGS_MODULE"]
    env = os.environ.get("PESARAIL_ENV", "production")
    if env not in ENVIRONMENTS:
        raise SystemExit(f"PESARAIL_ENV must be one of {', '.join(ENVIRONMENTS)}; got {env!r}")
    return ENVIRONMENTS[env]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(HELP)
        return 0
    command = args[0].replace("-", "_")
    if command == "bench":
        # The benchmark sets up its own servers and settings; it needs none here.
        from pesarail.common.management.commands.bench import run_bench

        return run_bench(args[1:])
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module_for(command)
    if command == "serve" and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before prometheus_client is imported so every gunicorn worker
        # writes its samples where /metrics can aggregate them.
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pesarail-metrics-")
    from pesarail.settings.env import ConfigurationError

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["pesarail", command, *args[1:]])
    except ConfigurationError as exc:
        print(f"pesarail: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
