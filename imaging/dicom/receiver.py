"""The DICOM C-STORE receiver (a Storage SCP): modalities and PACS push instances to it.

Every received instance goes through ``imaging.intake``, like an upload: one instance, one verdict.
"""

import logging
from dataclasses import dataclass

from django.db import close_old_connections
from pydicom import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from audit.models import AuditAction, AuditInterface
from audit.services import audit_record
from imaging.intake import IncomingFile, files_intake
from imaging.models import ImageSource

logger = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000


@dataclass(frozen=True)
class ReceiverConfig:
    ae_title: str = "MEDPORTAL"
    host: str = "0.0.0.0"  # noqa: S104 - a receiver listens for the hospital network
    port: int = 11112
    # Empty: any calling AE title may store. Otherwise only these.
    allowed_calling_ae_titles: tuple[str, ...] = ()


def _status(code: int, comment: str = "") -> Dataset:
    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]
    return status


def handle_store(event) -> Dataset:
    """C-STORE: take in the instance as received (its original encoding, with file meta)."""
    calling = event.assoc.requestor.ae_title
    close_old_connections()
    try:
        data = event.encoded_dataset(include_meta=True)
        [intake] = files_intake(files=[IncomingFile.from_bytes(data)], source=ImageSource.C_STORE)
    except Exception:
        logger.exception("C-STORE from %s failed", calling)
        return _status(STATUS_OUT_OF_RESOURCES, "Storage failed; try again later.")
    finally:
        close_old_connections()
    if intake.fault:
        return _status(STATUS_OUT_OF_RESOURCES, "Storage failed; try again later.")
    if not intake.stored:
        logger.warning("C-STORE from %s refused: %s", calling, intake.error)
        return _status(STATUS_CANNOT_UNDERSTAND, intake.peer_error or intake.error)
    if intake.created:
        # Who sent it is the peer: its AE title and address stand where a user would.
        close_old_connections()
        audit_record(
            actor=None,
            action=AuditAction.CREATE,
            obj=intake.image,
            patient=intake.image.study.patient_id,
            interface=AuditInterface.DIMSE,
            detail="C-STORE",
            username=calling,
            address=event.assoc.requestor.address,
        )
        close_old_connections()
    logger.info(
        "C-STORE from %s: %s %s",
        calling,
        intake.image.sop_instance_uid,
        "stored" if intake.created else "already stored",
    )
    return _status(STATUS_SUCCESS)


def handle_echo(event) -> int:
    return STATUS_SUCCESS


def handle_rejected(event) -> None:
    """Record an association refused (unknown calling or called AE title) with the peer's AE title and address."""
    requestor = event.assoc.requestor
    close_old_connections()
    try:
        audit_record(
            actor=None,
            action=AuditAction.LOGIN_FAILED,
            interface=AuditInterface.DIMSE,
            detail=f"association rejected, called {event.assoc.acceptor.ae_title}"[:255],
            username=requestor.ae_title,
            address=requestor.address,
        )
    finally:
        close_old_connections()


def build_ae(config: ReceiverConfig) -> AE:
    ae = AE(ae_title=config.ae_title)
    # The common storage SOP classes, in any transfer syntax: the file is stored as sent and
    # decoded later, or marked not analysable when no decoder can read it.
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    if config.allowed_calling_ae_titles:
        ae.require_calling_aet = list(config.allowed_calling_ae_titles)
    # A peer must call this receiver by its AE title, not by any name.
    ae.require_called_aet = True
    ae.maximum_pdu_size = 0
    return ae


def receiver_start(config: ReceiverConfig, *, block: bool = False):
    """Start listening. Non-blocking: returns the server, whose ``shutdown()`` stops it."""
    ae = build_ae(config)
    handlers = [(evt.EVT_C_STORE, handle_store), (evt.EVT_C_ECHO, handle_echo), (evt.EVT_REJECTED, handle_rejected)]
    logger.info("DICOM receiver %s listening on %s:%s", config.ae_title, config.host, config.port)
    return ae.start_server((config.host, config.port), block=block, evt_handlers=handlers)
