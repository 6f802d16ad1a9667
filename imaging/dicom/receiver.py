"""The DICOM C-STORE receiver (a Storage SCP): modalities and PACS push instances to it. The same
association also answers C-FIND, C-MOVE and C-GET (``imaging.dicom.query_retrieve``).

Only the peers on the allow-list (``imaging.models.DicomPeer``: calling AE title *and* address)
may associate, and only by calling this receiver's own AE title; everyone else is refused with an
A-ASSOCIATE-RJ and recorded in the audit trail. A dataset is written to a temporary file as it
arrives, never held whole in memory, and no more of it once it is over the size limit. Every
received instance then goes through ``imaging.intake``, like an upload: one instance, one verdict.
"""

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from pydicom import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from audit.models import AuditAction, AuditInterface
from audit.services import audit_record
from imaging.dicom.dimse import dimse_status
from imaging.dicom.negotiation import keep_preferred_syntaxes
from imaging.dicom.peers import dicom_peer_allowed
from imaging.dicom.query_retrieve import qr_contexts_add, qr_handlers
from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource

logger = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000

# What a peer is told when an instance is refused for its size: nothing about the archive.
TOO_LARGE = "Instance too large for this receiver; not stored."
STORAGE_FAILED = "Storage failed; try again later."

# A-ASSOCIATE-RJ: rejected-permanent, by the service user, calling AE title not recognised. A known
# title calling from the wrong address gets the same answer, so the reply does not confirm a title.
REJECT_UNKNOWN_PEER = (0x01, 0x01, 0x03)

# The largest P-DATA PDU we announce, and the largest PDU of any kind we read: pynetdicom reads a
# whole PDU into memory before anything can look at it, so a peer (known or not) that announces a
# huge one is cut off instead.
MAX_PDU_BYTES = 256 * 1024
MAX_PDU_READ = 1024 * 1024


@dataclass(frozen=True)
class ReceiverConfig:
    ae_title: str = "MEDPORTAL"
    host: str = "0.0.0.0"  # noqa: S104 - a receiver listens for the hospital network
    port: int = 11112


def handle_store(event) -> Dataset:
    """C-STORE: take in the instance as received (its original encoding, with file meta).

    pynetdicom has written it to a temporary file as it arrived (``STORE_RECV_CHUNKED_DATASET``)
    and removes that file once this returns.
    """
    calling = event.assoc.requestor.ae_title
    address = event.assoc.requestor.address
    path = Path(event.dataset_path)
    discarded = getattr(event.request, "_dataset_file", None)
    size = discarded.received if isinstance(discarded, _Discarded) else path.stat().st_size
    limit = settings.MEDPORTAL_MAX_DICOM_BYTES
    if size > limit:
        logger.warning("C-STORE from %s refused: %s bytes or more, the limit is %s", calling, size, limit)
        return dimse_status(STATUS_OUT_OF_RESOURCES, TOO_LARGE)
    close_old_connections()
    try:
        [intake] = files_intake(
            files=[IncomingFile.from_path(path, size=size)],
            source=ImageSource.C_STORE,
            peer=f"{calling} at {address}",
        )
    except Exception:
        logger.exception("C-STORE from %s failed", calling)
        return dimse_status(STATUS_OUT_OF_RESOURCES, STORAGE_FAILED)
    finally:
        close_old_connections()
    if intake.fault:
        return dimse_status(STATUS_OUT_OF_RESOURCES, STORAGE_FAILED)
    if intake.held is not None:
        _audit_peer(intake.held, patient=intake.held.patient_id, ae_title=calling, address=address, detail="held")
        logger.warning("C-STORE from %s held for reconciliation: %s", calling, intake.held.reason)
        return dimse_status(STATUS_CANNOT_UNDERSTAND, intake.peer_error)
    if not intake.stored:
        logger.warning("C-STORE from %s refused: %s", calling, intake.error)
        return dimse_status(STATUS_CANNOT_UNDERSTAND, intake.peer_error or intake.error)
    if intake.created:
        _audit_peer(intake.image, patient=intake.image.study.patient_id, ae_title=calling, address=address)
    logger.info(
        "C-STORE from %s: %s %s",
        calling,
        intake.image.sop_instance_uid,
        "stored" if intake.created else "already stored",
    )
    return dimse_status(STATUS_SUCCESS)


def _audit_peer(obj, *, patient, ae_title: str, address: str, detail: str = "") -> None:
    """Record what a peer's C-STORE created: its AE title and address stand where a user would."""
    close_old_connections()
    try:
        audit_record(
            actor=None,
            action=AuditAction.CREATE,
            obj=obj,
            patient=patient,
            interface=AuditInterface.DIMSE,
            detail=f"C-STORE {detail}".strip(),
            username=ae_title,
            address=address,
        )
    finally:
        close_old_connections()


def handle_echo(event) -> int:
    return STATUS_SUCCESS


def _audit_refused(*, ae_title: str, address: str, detail: str) -> None:
    close_old_connections()
    try:
        audit_record(
            actor=None,
            action=AuditAction.LOGIN_FAILED,
            interface=AuditInterface.DIMSE,
            detail=detail[:255],
            username=ae_title,
            address=address,
        )
    finally:
        close_old_connections()


def handle_requested(event) -> None:
    """Refuse an association unless its calling AE title and address are on the allow-list.

    Runs when the A-ASSOCIATE-RQ arrives, before any negotiation. Fails closed: a peer that
    cannot be checked (the database is down) is refused like an unknown one.
    """
    assoc = event.assoc
    request = assoc.requestor.primitive
    calling = str(request.calling_ae_title).strip()
    address = assoc.requestor.address
    close_old_connections()
    try:
        allowed = dicom_peer_allowed(ae_title=calling, address=address) is not None
    except Exception:
        logger.exception("Could not check DICOM peer %s at %s; refused", calling, address)
        allowed = False
    finally:
        close_old_connections()
    if allowed:
        return
    logger.warning("DICOM association from %s at %s refused: not an allowed peer", calling, address)
    try:
        # Recorded before the answer goes out, so the trail has it by the time the peer knows.
        _audit_refused(
            ae_title=calling,
            address=address,
            detail=f"association rejected: unknown peer, called {str(request.called_ae_title).strip()}",
        )
    except Exception:
        logger.exception("Could not record the refused association from %s at %s", calling, address)
    finally:
        # Whatever happened above, the peer is refused: an error here must not let it in.
        assoc.acse.send_reject(*REJECT_UNKNOWN_PEER)
        assoc.kill()


def handle_rejected(event) -> None:
    """Record an association pynetdicom refused (a wrong called AE title) with the peer's AE title and address."""
    requestor = event.assoc.requestor
    _audit_refused(
        ae_title=requestor.ae_title,
        address=requestor.address,
        detail=f"association rejected, called {event.assoc.acceptor.ae_title}",
    )


class _BoundedSocket(AssociationSocket):
    """Refuses to read a PDU longer than MAX_PDU_READ: the connection is closed instead."""

    def recv(self, nr_bytes: int) -> bytearray:
        if nr_bytes > MAX_PDU_READ:
            address = self.assoc.requestor.address
            logger.warning("DICOM peer %s announced a %s-byte PDU; connection closed", address, nr_bytes)
            raise OSError("PDU too long")
        return super().recv(nr_bytes)


class _Discarded:
    """Stands in for the temporary file of a dataset that went over the limit while arriving.

    The rest of the dataset is counted, not written, so a peer cannot fill the disk; the peer is
    answered Out of Resources once it has sent it all (handle_store).
    """

    def __init__(self, name: str, received: int):
        self.name, self.received = name, received
        self.file = self  # pynetdicom flushes ``file.file`` after each write

    def write(self, data: bytes) -> int:
        self.received += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _cap_datasets(assoc) -> None:
    """Stop writing a dataset to disk once it is over MEDPORTAL_MAX_DICOM_BYTES, as it arrives.

    pynetdicom (pinned) writes each P-DATA fragment of a C-STORE to the message's temporary file;
    after each one, the file is measured and, once over the limit, emptied and swapped for _Discarded.
    """
    dimse = assoc.dimse
    receive = dimse.receive_primitive

    def receive_capped(primitive) -> None:
        receive(primitive)
        arriving = getattr(dimse.message, "_data_set_file", None)  # no message: it is complete
        if arriving is None or isinstance(arriving, _Discarded):
            return
        received = arriving.tell()
        if received > settings.MEDPORTAL_MAX_DICOM_BYTES:
            arriving.close()
            os.truncate(arriving.name, 0)  # pynetdicom removes the (now empty) file after handle_store
            dimse.message._data_set_file = _Discarded(arriving.name, received)
            logger.warning("C-STORE dataset from %s over the limit while arriving", assoc.requestor.address)

    dimse.receive_primitive = receive_capped


class _RequestHandler(RequestHandler):
    def _create_association(self):
        assoc = super()._create_association()
        # pynetdicom builds the socket inside this method and allows no second one: give it our reader.
        assoc.dul.socket.__class__ = _BoundedSocket
        _cap_datasets(assoc)
        return assoc


def build_ae(config: ReceiverConfig) -> AE:
    ae = AE(ae_title=config.ae_title)
    # The common storage SOP classes, in any transfer syntax: the file is stored as sent and
    # decoded later, or marked not analysable when no decoder can read it.
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    qr_contexts_add(ae)
    # A peer must call this receiver by its AE title, not by any name. Who the peer is (calling
    # AE title and address) is checked by handle_requested.
    ae.require_called_aet = True
    ae.maximum_pdu_size = MAX_PDU_BYTES
    return ae


def receiver_start(config: ReceiverConfig, *, block: bool = False):
    """Start listening. Non-blocking: returns the server, whose ``shutdown()`` stops it."""
    # Received datasets go to a temporary file as they arrive (pynetdicom's one switch, for the
    # whole process; this process only receives through here).
    _config.STORE_RECV_CHUNKED_DATASET = True
    ae = build_ae(config)
    handlers = [
        (evt.EVT_REQUESTED, handle_requested),
        (evt.EVT_REQUESTED, keep_preferred_syntaxes),
        (evt.EVT_C_STORE, handle_store),
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_REJECTED, handle_rejected),
        *qr_handlers(ae_title=config.ae_title),
    ]
    server = ae.make_server(
        (config.host, config.port),
        evt_handlers=handlers,
        server_class=ThreadedAssociationServer,
        request_handler=_RequestHandler,
    )
    ae._servers.append(server)  # as AE.start_server does, so that ae.shutdown() stops it too
    logger.info("DICOM receiver %s listening on %s:%s", config.ae_title, config.host, server.server_address[1])
    if block:
        server.serve_forever()
        return None
    thread = threading.Thread(target=server.serve_forever, name=f"DicomReceiver:{config.port}", daemon=True)
    thread.start()
    return server
