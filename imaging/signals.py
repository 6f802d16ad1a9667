"""What imaging announces to the apps built on it, which it never imports."""

from collections.abc import Sequence

from django.dispatch import Signal

from imaging.models import Image, Study

# Sent inside the transaction that stored new images of one study, with ``study`` and ``images``
# (the new rows). A receiver does its follow-up work in that same transaction, so the images and
# the work commit or roll back together, and returns the objects it made, each with an
# ``image_id`` (inference answers with the AI second opinions it queued). A receiver that
# raises rejects the upload.
images_stored = Signal()


def images_stored_send(*, study: Study, images: Sequence[Image]) -> dict:
    """Announce new images; returns, per image id, what the receivers made for it."""
    made: dict = {image.id: [] for image in images}
    if not images:
        return made
    for _receiver, response in images_stored.send(sender=Image, study=study, images=list(images)):
        for item in response or ():
            made[item.image_id].append(item)
    return made
