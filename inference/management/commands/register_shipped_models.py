from django.core.management.base import BaseCommand

from inference.services import aimodels_register_shipped


class Command(BaseCommand):
    help = "Register every model shipped in inference/zoo (safe to run again)."

    def handle(self, *args, **options) -> None:
        for model in aimodels_register_shipped():
            self.stdout.write(f"{model}  [{model.status}]  sha256 {model.weights_sha256[:12]}")
