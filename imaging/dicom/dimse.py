"""Pieces the DIMSE services (the C-STORE receiver and Query/Retrieve) share."""

from pydicom import Dataset


def dimse_status(code: int, comment: str = "") -> Dataset:
    """A status dataset; the Error Comment is cut to the 64 characters its VR (LO) allows."""
    status = Dataset()
    status.Status = code
    if comment:
        status.ErrorComment = comment[:64]
    return status
