"""python manage.py dicom_receiver --ae-title MEDPORTAL --port 11112"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from imaging.dicom.receiver import ReceiverConfig, receiver_start


class Command(BaseCommand):
    help = "Run the DICOM C-STORE receiver: instances pushed by modalities and PACS are ingested like uploads."

    def add_arguments(self, parser):
        parser.add_argument("--ae-title", default="MEDPORTAL", help="Our AE title (max 16 characters).")
        parser.add_argument("--host", default="0.0.0.0", help="Address to listen on.")  # noqa: S104
        parser.add_argument("--port", type=int, default=11112, help="TCP port to listen on.")
        parser.add_argument(
            "--allow-calling-ae",
            action="append",
            default=[],
            metavar="AE_TITLE",
            help="Accept associations only from this calling AE title (repeatable). Default: any.",
        )

    def handle(self, *args, **options):
        ae_title = options["ae_title"].strip()
        if not ae_title or len(ae_title) > 16:
            raise CommandError("The AE title must have 1 to 16 characters.")
        config = ReceiverConfig(
            ae_title=ae_title,
            host=options["host"],
            port=options["port"],
            allowed_calling_ae_titles=tuple(options["allow_calling_ae"]),
        )
        try:
            server = receiver_start(config, block=False)
        except OSError as exc:
            raise CommandError(f"Cannot listen on {config.host}:{config.port}: {exc}") from exc
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"DICOM receiver {config.ae_title} listening on {config.host}:{server.server_address[1]}")
        self.stdout.flush()
        stop.wait()
        # Let associations in progress finish their current C-STORE, then close.
        server.shutdown()
        self.stdout.write("DICOM receiver stopped.")
