#!/usr/bin/env python
import os
import sys

from django.core.management import execute_from_command_line


def main() -> None:
    # Forgetting DJANGO_SETTINGS_MODULE must never mean DEBUG and a public key: the demo, the tests and
    # the benchmark name their settings explicitly; anything else gets production, which fails loudly
    # without its secrets.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medportal.settings.production")

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
