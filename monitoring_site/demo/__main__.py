"""`make demo`: `manage.py tradewatch demo` with the database and broker `make run` picks.

`make run` chooses them from the environment, else local PostgreSQL and Redis, else
its embedded SQLite file and file broker (`monitoring_site.launcher.choose_backends`);
the demo makes its sources, channel and policy in that same database, so it chooses
the same way before Django reads its settings.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    from monitoring_site.launcher import choose_backends

    backends = choose_backends(os.environ)
    os.environ.setdefault("DATABASE_URL", backends.database_url)
    os.environ.setdefault("CELERY_BROKER_URL", backends.broker_url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "tradewatch", "demo", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
