"""Set up the PostgreSQL role the application runs as: it may not change or wipe the audit trail.

Run by the owner of the tables (the role that migrates) after every ``migrate``; safe to run again.
The role is created when missing, with the password from ``--password-env``; it gets read and
write rights on every table (and on tables later migrations create) except UPDATE, DELETE and
TRUNCATE on the audit tables. See docs/deployment.md.
"""

import os

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections, transaction


class Command(BaseCommand):
    help = "Create or update the application's database role, which cannot change or wipe the audit trail."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--role", default="medportal_app", help="The application's role (default medportal_app).")
        parser.add_argument(
            "--password-env",
            default="APP_DB_PASSWORD",
            help="Environment variable holding the password for a role that does not exist yet.",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, **options) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            raise CommandError("Database roles exist on PostgreSQL only.")
        quote = connection.ops.quote_name
        role = quote(options["role"])
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_user")
            database, owner = (quote(name) for name in cursor.fetchone())
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [options["role"]])
            found = cursor.fetchone()
            if found and found[0]:
                raise CommandError(f"{options['role']} is a superuser, which can switch the audit triggers off.")
            if not found:
                password = os.environ.get(options["password_env"], "")
                if not password:
                    raise CommandError(f"Set {options['password_env']} to create the role {options['role']}.")
                cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", [password])
            for statement in (
                f"GRANT CONNECT ON DATABASE {database} TO {role}",
                f"GRANT USAGE ON SCHEMA public TO {role}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
                f"GRANT USAGE, SELECT ON SEQUENCES TO {role}",
            ):
                cursor.execute(statement)
            for table in apps.get_app_config("audit").append_only_tables():
                cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {quote(table)} FROM {role}")
        self.stdout.write(f"{options['role']} may read and append to the audit trail, never change or wipe it.")
