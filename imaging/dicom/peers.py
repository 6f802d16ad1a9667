"""The DICOM peers allowed to send to the C-STORE receiver: who may associate, where a C-MOVE may
send, and seeding the list.

Administrators keep the list in the Django admin. ``MEDPORTAL_DICOM_PEERS`` (and the receiver
command's ``--peer``) only bootstrap it: an entry missing from the list is added when the
receiver starts, one already there is left as the administrators set it.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditAction, AuditInterface
from audit.services import audit_record
from imaging.models import DicomPeer


@dataclass(frozen=True)
class PeerEntry:
    ae_title: str
    network: str


def peer_entry_parse(text: str) -> PeerEntry:
    """``AE_TITLE@ADDRESS`` or ``AE_TITLE@NETWORK/BITS``, e.g. ``CT1@10.1.2.3``. Raises ValidationError."""
    title, separator, network = text.strip().rpartition("@")
    if not separator:
        raise ValidationError(f"{text!r}: write a DICOM peer as AE_TITLE@ADDRESS or AE_TITLE@NETWORK/BITS.")
    peer = DicomPeer(ae_title=title, network=network)
    peer.clean_fields(exclude=["description"])
    peer.clean()
    return PeerEntry(ae_title=peer.ae_title, network=peer.network)


def dicom_peer_allowed(*, ae_title: str, address: str) -> DicomPeer | None:
    """The active peer that this calling AE title from this address is, or None."""
    title = (ae_title or "").strip()
    if not title:
        return None
    for peer in DicomPeer.objects.filter(active=True, ae_title=title):
        if peer.admits(address):
            return peer
    return None


def dicom_move_destination(*, ae_title: str) -> tuple[str, int] | None:
    """Where a C-MOVE to ``ae_title`` goes: an active peer's one address and storage port, or None.

    The requester only names the destination; the address comes from the allow-list, never from it.
    """
    title = (ae_title or "").strip()
    if not title:
        return None
    for peer in DicomPeer.objects.filter(active=True, ae_title=title, port__isnull=False).order_by("pk"):
        if peer.host:
            return peer.host, peer.port
    return None


@transaction.atomic
def dicom_peers_seed(*, entries: Iterable[str]) -> list[DicomPeer]:
    """Add the peers named in settings that the list lacks. Returns those added.

    An existing entry is not touched, so a peer an administrator deactivated stays refused.
    Raises ValidationError on an entry that cannot be read, before anything is added.
    """
    parsed = [peer_entry_parse(text) for text in entries if text.strip()]
    added = []
    for entry in parsed:
        peer, created = DicomPeer.objects.get_or_create(
            ae_title=entry.ae_title, network=entry.network, defaults={"description": "From MEDPORTAL_DICOM_PEERS."}
        )
        if created:
            audit_record(
                actor=None,
                action=AuditAction.CREATE,
                obj=peer,
                interface=AuditInterface.SYSTEM,
                detail="DICOM peer seeded from settings",
            )
            added.append(peer)
    return added
