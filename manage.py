#!/usr/bin/env python
import os
import sys

# Commands that create or inspect the schema log in as the role that owns the
# tables (DATABASE_OWNER_URL, when set); everything else as the application role.
OWNER_COMMANDS = frozenset({"migrate", "createcachetable", "dbshell", "db_partition"})


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if len(sys.argv) > 1 and sys.argv[1] in OWNER_COMMANDS:
        os.environ.setdefault("SEGMENTA_DB_ROLE", "owner")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
