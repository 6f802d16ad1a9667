"""The web side of inference: the model registry, creating and re-running predictions, reviews.

The worker's side (claims, results, recovery) is in ``inference.claims``; a study's status is
refreshed only through ``inference.study_status``; tasks are sent only by ``inference.dispatch``.
"""

import json
import logging
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.policy import may_amend_review
from accounts.roles import Role
from imaging.models import Image, Study, StudyStatus
from imaging.storage import blob_store, content_name, sha256_hex
from inference.dispatch import predictions_send_on_commit
from inference.models import (
    AIModel,
    AIModelStatus,
    Prediction,
    PredictionStatus,
    Review,
    ReviewAmendment,
    ReviewDecision,
)
from inference.reports import prediction_reports_store_on_commit
from inference.selectors import aimodels_for_study
from inference.study_status import study_refresh_status

logger = logging.getLogger(__name__)


# --- Model registry -------------------------------------------------------------------------


def _card_value(card: dict, key: str):
    if key not in card:
        raise ValidationError(f"The model card has no '{key}'.")
    return card[key]


@transaction.atomic
def aimodel_register(*, weights_path: Path, card: dict, activate: bool = True, queue: str | None = None) -> AIModel:
    """Register one exact model version from its weights file and card.

    Registering the same name, version and weights again returns the existing entry;
    the same name and version with other weights is refused, so a version always
    means one set of weights.
    """
    weights_path = Path(weights_path)
    data = weights_path.read_bytes()
    sha256 = sha256_hex(data)
    name, version = _card_value(card, "name"), str(_card_value(card, "version"))
    existing = AIModel.objects.filter(name=name, version=version).first()
    if existing is not None:
        if existing.weights_sha256 != sha256:
            raise ValidationError(
                f"{name} v{version} is already registered with other weights; give the new weights a new version."
            )
        return existing
    labels = list(_card_value(card, "labels"))
    height, width = (int(v) for v in _card_value(card, "input_size"))
    blob = blob_store(data=data, name=content_name("models", sha256, weights_path.suffix or ".keras"))
    _store_input_check(weights_path=weights_path, card=card)
    model = AIModel(
        name=name,
        version=version,
        display_name=card.get("display_name") or name,
        task=card.get("task", "classification"),
        modalities=list(_card_value(card, "modalities")),
        body_part=_card_value(card, "body_part"),
        procedure=card.get("procedure") or "",
        labels=labels,
        normal_labels=card.get("normal_labels"),
        input_height=height,
        input_width=width,
        color_mode=_card_value(card, "color_mode"),
        preprocessing=card.get("preprocessing") or {},
        temperature=float(card.get("temperature") or 1.0),
        gradcam_layer=card.get("gradcam_layer") or "",
        weights=blob.name,
        weights_sha256=sha256,
        card=json.loads(json.dumps(card)),
        metrics=card.get("metrics") or {},
        queue=queue or card.get("queue") or settings.MEDPORTAL_GPU_QUEUE,
        status=AIModelStatus.RETIRED,
    )
    model.full_clean()
    model.save()
    if activate:
        aimodel_activate(model=model)
    return model


def _store_input_check(*, weights_path: Path, card: dict) -> None:
    """Store the card's input check (the file beside the weights) under its sha256, where the worker looks."""
    entry = card.get("input_check")
    if not entry:
        return
    path = weights_path.with_name(entry["file"])
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ValidationError(f"The card names an input check {entry['file']} but none is beside the weights.") from exc
    if sha256_hex(data) != entry["sha256"]:
        raise ValidationError(f"The input check {path.name} does not match the sha256 in the card.")
    blob_store(data=data, name=content_name("models", entry["sha256"], ".npz"))


@transaction.atomic
def aimodel_activate(*, model: AIModel) -> AIModel:
    """Route new studies to this version; other versions of the same model are retired."""
    now = timezone.now()
    AIModel.objects.filter(name=model.name, status=AIModelStatus.ACTIVE).exclude(id=model.id).update(
        status=AIModelStatus.RETIRED, retired_at=now
    )
    model.status = AIModelStatus.ACTIVE
    model.retired_at = None
    model.save(update_fields=["status", "retired_at"])
    return model


@transaction.atomic
def aimodel_retire(*, model: AIModel) -> AIModel:
    """Stop routing to this version. Its past predictions keep pointing at it."""
    model.status = AIModelStatus.RETIRED
    model.retired_at = timezone.now()
    model.save(update_fields=["status", "retired_at"])
    return model


def shipped_model_dirs(zoo: Path | None = None) -> list[Path]:
    zoo = Path(zoo or settings.MEDPORTAL_MODEL_ZOO)
    return sorted(p.parent for p in zoo.glob("*/card.json") if (p.parent / "model.keras").exists())


def aimodels_register_shipped(*, zoo: Path | None = None) -> list[AIModel]:
    """Register every model shipped in the repository's zoo (idempotent).

    A shipped version newer than the active one of the same name takes over through
    ``aimodel_activate``, which retires the old one; its past predictions keep pointing
    at it. A version an administrator activated that is not a plain release number
    (say ``2.1.0-local``) is left routed.
    """
    registered = []
    for directory in shipped_model_dirs(zoo):
        card = json.loads((directory / "card.json").read_text())
        model = aimodel_register(weights_path=directory / "model.keras", card=card, activate=False)
        active = AIModel.objects.active().filter(name=model.name).first()
        if active is None or _supersedes(model.version, active.version):
            aimodel_activate(model=model)
        registered.append(model)
    return registered


def _release(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def _supersedes(shipped: str, active: str) -> bool:
    new, old = _release(shipped), _release(active)
    return new is not None and old is not None and new > old


# --- Predictions: creating and queueing -----------------------------------------------------


def prediction_refusal_reason(*, image: Image, model: AIModel) -> str:
    """Why this model must not read this image, or "" when it may.

    A model never reads an image smaller than its own input: enlarging invents no detail, and a
    network trained on larger pictures sees an enlarged thumbnail as something it has never seen,
    yet still answers with high confidence.
    """
    if min(image.width, image.height) < min(model.input_height, model.input_width):
        return (
            f"Not run: the image is {image.width}×{image.height} pixels, smaller than the "
            f"{model.input_width}×{model.input_height} this model reads; an enlarged image would "
            "give an unreliable answer."
        )
    return ""


def predictions_for_stored_images(sender, *, study: Study, images: Sequence[Image], **kwargs) -> list[Prediction]:
    """Receiver of ``imaging.signals.images_stored``: queue the AI work of new images, in their transaction.

    Images whose pixels cannot be decoded get none: no model can read them.
    """
    return predictions_create_for_images(study=study, images=[image for image in images if image.analysable])


def predictions_create_for_images(*, study: Study, images: Sequence[Image]) -> list[Prediction]:
    """The same for several new images of one study, with one statement per table.

    Their tasks are sent once the transaction commits; ``enqueued_at`` is set now, so the
    send needs no statement of its own (a failed send clears it for the sweeper).
    """
    now = timezone.now()
    models = aimodels_for_study(study=study)
    predictions = []
    for image in images:
        for model in models:
            reason = prediction_refusal_reason(image=image, model=model)
            if reason:
                predictions.append(
                    Prediction(
                        image=image,
                        model=model,
                        study_modality=study.modality,
                        status=PredictionStatus.FAILED,
                        error=reason,
                        finished_at=now,
                    )
                )
            else:
                predictions.append(Prediction(image=image, model=model, study_modality=study.modality, enqueued_at=now))
    if not predictions:
        return predictions
    Prediction.objects.bulk_create(predictions)
    # Images too small for a model are declined at once; the refusal goes into the study as an SR.
    prediction_reports_store_on_commit(
        prediction_ids=[p.id for p in predictions if p.status == PredictionStatus.FAILED]
    )
    queued = [p for p in predictions if p.status == PredictionStatus.QUEUED]
    if queued:
        # Queued work makes the study "AI pending" whatever else it holds; a worker finishing
        # the study's last prediction at this moment waits for this row lock and recounts.
        Study.objects.filter(id=study.id).exclude(status=StudyStatus.AI_PENDING).update(
            status=StudyStatus.AI_PENDING, updated_at=now
        )
        predictions_send_on_commit([(p.id, p.model.queue) for p in queued], marked=True)
    else:
        study_refresh_status(study_id=study.id)
    return predictions


@transaction.atomic
def predictions_rerun(*, images: Iterable[Image], model: AIModel | None = None) -> list[Prediction]:
    """Queue AI again: new predictions for models that have not read the image yet, and failed ones again.

    With ``model`` only that version runs (e.g. a newly activated version over past images).
    Images whose pixels cannot be decoded are skipped: no model can read them.
    """
    queued: list[Prediction] = []
    for image in images:
        if not image.analysable:
            continue
        models = [model] if model is not None else aimodels_for_study(study=image.study)
        for candidate in models:
            if prediction_refusal_reason(image=image, model=candidate):
                continue
            prediction, created = Prediction.objects.get_or_create(
                image=image, model=candidate, defaults={"study_modality": image.study.modality}
            )
            if created:
                queued.append(prediction)
            elif prediction.status == PredictionStatus.FAILED:
                _reset_to_queued(prediction, attempts=0)
                queued.append(prediction)
        study_refresh_status(study_id=image.study_id)
    predictions_send_on_commit([(p.id, p.model.queue) for p in queued])
    return queued


def _reset_to_queued(prediction: Prediction, *, attempts: int | None = None) -> None:
    prediction.status = PredictionStatus.QUEUED
    prediction.error = ""
    prediction.claim_token = None
    prediction.started_at = None
    prediction.finished_at = None
    prediction.queued_at = timezone.now()
    if attempts is not None:
        prediction.attempts = attempts
    prediction.save(
        update_fields=["status", "error", "claim_token", "started_at", "finished_at", "queued_at", "attempts"]
    )


# --- Reviews --------------------------------------------------------------------------------


SAME_LABEL_OVERRIDE = "Choose a different label than the AI's to override, or choose Agree."


def _final_label(*, prediction: Prediction, decision: ReviewDecision | str, final_label: str) -> str:
    """The final label a decision stands for, or why it cannot stand."""
    final_label = (final_label or "").strip()
    if decision == ReviewDecision.AGREE:
        final_label = final_label or prediction.label
        if final_label != prediction.label:
            raise ValidationError({"final_label": "To give another label, choose Override."})
    elif decision == ReviewDecision.OVERRIDE:
        if not final_label:
            raise ValidationError({"final_label": "An override needs the final label."})
        if final_label == prediction.label:
            raise ValidationError({"final_label": SAME_LABEL_OVERRIDE})
    if final_label not in prediction.model.labels:
        raise ValidationError({"final_label": f"Choose one of: {', '.join(prediction.model.labels)}."})
    return final_label


@transaction.atomic
def review_create(
    *,
    prediction: Prediction,
    reviewer: User,
    decision: ReviewDecision | str,
    final_label: str = "",
    comment: str = "",
) -> Review:
    if not reviewer.has_role(Role.RADIOLOGIST):
        raise PermissionError("Only radiologists review AI second opinions.")
    prediction = Prediction.objects.select_for_update().select_related("model").get(id=prediction.id)
    if prediction.status != PredictionStatus.SUCCEEDED:
        raise ValidationError("Only a finished AI second opinion can be reviewed.")
    if Review.objects.filter(prediction=prediction).exists():
        raise ValidationError("This AI second opinion has already been reviewed.")
    final_label = _final_label(prediction=prediction, decision=decision, final_label=final_label)
    review = Review(
        prediction=prediction,
        reviewer=reviewer,
        decision=decision,
        final_label=final_label,
        comment=comment.strip(),
    )
    review.full_clean()
    review.save()
    Prediction.objects.filter(pk=prediction.pk).update(reviewed=True)
    study_refresh_status(study_id=prediction.image.study_id)
    prediction_reports_store_on_commit(prediction_ids=[prediction.id])
    return review


@transaction.atomic
def review_amend(
    *,
    review: Review,
    user: User,
    decision: ReviewDecision | str,
    final_label: str = "",
    comment: str = "",
    reason: str,
) -> Review:
    """A radiologist corrects their own review. The decision it replaces is kept as an amendment,
    with the reason, so the history shows every decision and who changed it when and why."""
    review = Review.objects.select_for_update().select_related("prediction__model").get(id=review.id)
    if not may_amend_review(user, review):
        raise PermissionError("Only the radiologist who made a review can amend it.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Give a reason for the amendment."})
    final_label = _final_label(prediction=review.prediction, decision=decision, final_label=final_label)
    comment = (comment or "").strip()
    if (review.decision, review.final_label, review.comment) == (decision, final_label, comment):
        raise ValidationError("Nothing changed: change the decision, the label or the comment to amend.")
    last = review.amendments.order_by("-amended_at").first()
    ReviewAmendment.objects.create(
        review=review,
        previous_decision=review.decision,
        previous_final_label=review.final_label,
        previous_comment=review.comment,
        previous_reviewed_at=last.amended_at if last else review.reviewed_at,
        reason=reason,
        amended_by=user,
    )
    review.decision = decision
    review.final_label = final_label
    review.comment = comment
    review.full_clean()
    review.save(update_fields=["decision", "final_label", "comment"])
    prediction_reports_store_on_commit(prediction_ids=[review.prediction_id])
    return review


def review_unavailable_reason(prediction: Prediction) -> str:
    """Why this AI second opinion cannot be reviewed (yet), or "" when it can."""
    if prediction.status == PredictionStatus.SUCCEEDED:
        return ""
    if prediction.status == PredictionStatus.FAILED:
        # A model that could not read the image, or that refused it (too small, or its input check
        # found it unlike what it was trained on), gave no opinion to agree with.
        return prediction.error or "The AI could not read this image."
    return "The AI is still reading this image."


@dataclass
class AgreeAllOutcome:
    """What "agree with all" did: the reviews it recorded, the opinions already reviewed (left as
    they were), and the ones it left for the radiologist to look at, each with the reason."""

    agreed: list[Review] = field(default_factory=list)
    already_reviewed: list[Prediction] = field(default_factory=list)
    left: list[tuple[Prediction, str]] = field(default_factory=list)


@transaction.atomic
def reviews_agree_all(
    *, study: Study, reviewer: User, prediction_ids: Collection[uuid.UUID | str] | None = None
) -> AgreeAllOutcome:
    """Agree with every AI second opinion of the study that awaits review, one review each.

    ``prediction_ids`` are the opinions the radiologist was shown when confirming: one that finished
    after that is left for them to read, not agreed with unseen. Calling it again records nothing new.
    """
    if not reviewer.has_role(Role.RADIOLOGIST):
        raise PermissionError("Only radiologists review AI second opinions.")
    shown = None if prediction_ids is None else {str(value) for value in prediction_ids}
    predictions = list(
        Prediction.objects.select_for_update(of=("self",))
        .filter(image__study=study)
        .select_related("model", "image")
        .order_by("image__original_filename", "image__uploaded_at", "model__name")
    )
    reviewed = set(Review.objects.filter(prediction__in=predictions).values_list("prediction_id", flat=True))
    outcome = AgreeAllOutcome()
    for prediction in predictions:
        if prediction.id in reviewed:
            outcome.already_reviewed.append(prediction)
        elif reason := review_unavailable_reason(prediction):
            outcome.left.append((prediction, reason))
        elif shown is not None and str(prediction.id) not in shown:
            outcome.left.append((prediction, "It finished after you confirmed; read it before agreeing."))
        else:
            outcome.agreed.append(
                review_create(prediction=prediction, reviewer=reviewer, decision=ReviewDecision.AGREE)
            )
    return outcome
