from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.services import aimodels_register_shipped
from web.demo import DEMO_PASSWORD, demo_records_ensure, demo_users_ensure


class Command(BaseCommand):
    help = "Create demo users, register the shipped models and add demo patients with sample images."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-records", action="store_true", help="Users and models only.")

    def handle(self, *args, **options) -> None:
        if not settings.MEDPORTAL_DEMO_ALLOWED:
            raise CommandError("Demo users with a known password are refused outside the embedded default.")
        models = aimodels_register_shipped()
        self.stdout.write(f"Registered {len(models)} shipped model(s).")
        users = demo_users_ensure()
        if not options["no_records"]:
            uploaded = demo_records_ensure()
            self.stdout.write(f"Demo records ready ({uploaded} new image(s) queued for AI).")
        self.stdout.write("Log in with:")
        for username, role in users:
            self.stdout.write(f"  {role.label:<13} user {username!r:<15} password {DEMO_PASSWORD!r}")
