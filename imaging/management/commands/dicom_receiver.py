"""python manage.py dicom_receiver --ae-title MEDPORTAL --port 11112"""

import signal
import threading

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging.dicom.peers import dicom_peers_seed
from imaging.dicom.receiver import ReceiverConfig, receiver_start
from imaging.models import DicomPeer


class Command(BaseCommand):
    help = (
        "Run the DICOM receiver: instances pushed by modalities and PACS are ingested like uploads; "
        "C-FIND, C-MOVE and C-GET answer from the archive."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ae-title", default="MEDPORTAL", help="Our AE title (max 16 characters).")
        parser.add_argument("--host", default="0.0.0.0", help="Address to listen on.")  # noqa: S104
        parser.add_argument("--port", type=int, default=11112, help="TCP port to listen on.")
        parser.add_argument(
            "--peer",
            action="append",
            default=[],
            metavar="AE_TITLE@ADDRESS",
            help=(
                "Add this peer to the allow-list if it is missing, like MEDPORTAL_DICOM_PEERS (repeatable), "
                "e.g. CT1@10.1.2.3 or CT1@10.1.2.0/24. The list is kept in the admin (DICOM peers)."
            ),
        )

    def handle(self, *args, **options):
        ae_title = options["ae_title"].strip()
        if not ae_title or len(ae_title) > 16:
            raise CommandError("The AE title must have 1 to 16 characters.")
        try:
            added = dicom_peers_seed(entries=[*settings.MEDPORTAL_DICOM_PEERS, *options["peer"]])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        for peer in added:
            self.stdout.write(f"Allowed DICOM peer added: {peer}")
        if not DicomPeer.objects.filter(active=True).exists():
            self.stderr.write(
                "No DICOM peer is allowed: every association will be refused. "
                "Add peers in the admin (DICOM peers) or with MEDPORTAL_DICOM_PEERS."
            )
        config = ReceiverConfig(ae_title=ae_title, host=options["host"], port=options["port"])
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
