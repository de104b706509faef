#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitoring_site.settings")
    if os.environ["DJANGO_SETTINGS_MODULE"] == "monitoring_site.settings":
        # The database, broker and secrets `make run` uses, unless the environment says.
        from monitoring_site.launch_defaults import SecretsFileError
        from monitoring_site.launcher import command_line_environment

        try:
            os.environ.update(command_line_environment(os.environ))
        except SecretsFileError as exc:
            sys.exit(str(exc))
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and "
            "available on your PYTHONPATH environment variable? Did you "
            "forget to activate a virtual environment?"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
