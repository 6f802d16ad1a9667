import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from PIL import Image as PILImage

from imaging.models import Priority, Study, StudyStatus
from imaging.storage import blob_store, content_name, sha256_hex
from inference.models import PredictionStatus, Review
from inference.study_status import study_refresh_status
from tests.factories import StudyFactory
from tests.web.conftest import make_aimodel, make_image, make_prediction

pytestmark = pytest.mark.django_db


def done_study(model, *, label="pneumonia", confidence=0.9, priority=Priority.ROUTINE, age_minutes=0, **study_fields):
    """A study whose one image has a finished, unreviewed AI result."""
    study = StudyFactory(priority=priority, **study_fields)
    if age_minutes:
        Study.objects.filter(id=study.id).update(created_at=timezone.now() - timedelta(minutes=age_minutes))
    make_prediction(make_image(study, name=f"{study.accession_number}.png"), model, label=label, confidence=confidence)
    study_refresh_status(study_id=study.id)
    study.refresh_from_db()
    return study


def test_worklist_is_in_triage_order_and_shows_waiting_time(radiologist_client):
    model = make_aimodel()
    old_routine_normal = done_study(model, label="normal", confidence=0.95, age_minutes=300)
    new_routine_flagged = done_study(model, label="pneumonia", confidence=0.93, age_minutes=5)
    routine_unsure = done_study(model, label="pneumonia", confidence=0.55, age_minutes=400)
    stat = done_study(model, label="normal", confidence=0.99, priority=Priority.STAT, age_minutes=1)
    StudyFactory()  # no images: not waiting for a radiologist

    response = radiologist_client.get(reverse("pages:worklist"))
    order = [study.id for study in response.context["page"].object_list]
    assert order == [stat.id, new_routine_flagged.id, routine_unsure.id, old_routine_normal.id]
    html = response.content.decode()
    assert "6 h 40 min" in html  # routine_unsure has waited 400 minutes
    assert "Abnormal 93.0%" in html
    assert "AI second opinion — not a diagnosis" in html


def test_worklist_filters_by_modality_and_status(radiologist_client):
    model = make_aimodel()
    chest_dx = done_study(model, modality="DX")
    chest_cr = done_study(model, modality="CR")
    pending = StudyFactory(modality="DX", status=StudyStatus.AI_PENDING)

    by_modality = radiologist_client.get(reverse("pages:worklist"), {"modality": "CR"}).context["page"].object_list
    assert [s.id for s in by_modality] == [chest_cr.id]
    default = radiologist_client.get(reverse("pages:worklist")).context["page"].object_list
    assert {s.id for s in default} == {chest_dx.id, chest_cr.id}
    running = radiologist_client.get(reverse("pages:worklist"), {"status": "ai_pending"}).context["page"].object_list
    assert [s.id for s in running] == [pending.id]


def test_staff_cannot_open_the_worklist_or_review_page(staff_client):
    study = done_study(make_aimodel())
    for url in (reverse("pages:worklist"), reverse("pages:review", args=[study.id])):
        response = staff_client.get(url)
        assert response.status_code == 403
        assert "radiologist role" in response.content.decode()


def _heatmap_png(size=(16, 12)) -> str:
    buffer = io.BytesIO()
    PILImage.linear_gradient("L").resize(size).save(buffer, format="PNG")
    data = buffer.getvalue()
    return blob_store(data=data, name=content_name("heatmaps", sha256_hex(data), ".png")).name


def test_review_page_shows_image_heatmap_chart_and_model_card(radiologist_client):
    model = make_aimodel()
    study = done_study(model, label="pneumonia", confidence=0.9)
    prediction = study.images.get().predictions.get()
    prediction.heatmap = _heatmap_png()
    prediction.save()

    response = radiologist_client.get(reverse("pages:review", args=[study.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "AI second opinion — not a diagnosis" in html
    assert reverse("pages:prediction-heatmap", args=[prediction.id]) in html and "Grad-CAM heatmap" in html
    assert reverse("pages:image-display", args=[prediction.image_id]) in html
    assert "<svg" in html and "Class probabilities" in html and "90.0%" in html and "10.0%" in html
    assert "PneumoniaMNIST v2" in html and "91.2%" in html and "Second opinion on paediatric chest X-rays." in html
    assert "cxr-pneumonia v1.2.0" in html

    heatmap = radiologist_client.get(reverse("pages:prediction-heatmap", args=[prediction.id]))
    assert heatmap.status_code == 200 and heatmap["Content-Type"] == "image/png"
    assert PILImage.open(io.BytesIO(heatmap.content)).mode == "L"


def test_override_records_the_review_and_moves_to_the_next_study(radiologist_client, radiologist_user):
    model = make_aimodel()
    first = done_study(model, priority=Priority.STAT)
    second = done_study(model, priority=Priority.ROUTINE)
    prediction = first.images.get().predictions.get()

    response = radiologist_client.post(
        reverse("pages:review", args=[first.id]),
        {"prediction": prediction.id, "decision": "override", "final_label": "normal", "comment": "Artefact."},
    )
    assert response.status_code == 302
    assert response.url == reverse("pages:review", args=[second.id])
    review = Review.objects.get(prediction=prediction)
    assert (review.decision, review.final_label, review.comment, review.reviewer) == (
        "override",
        "normal",
        "Artefact.",
        radiologist_user,
    )
    assert review.reviewed_at is not None
    first.refresh_from_db()
    assert first.status == StudyStatus.REVIEWED
    remaining = radiologist_client.get(reverse("pages:worklist")).context["page"].object_list
    assert [s.id for s in remaining] == [second.id]

    # The last one sends the radiologist back to the (now empty) worklist.
    last = second.images.get().predictions.get()
    response = radiologist_client.post(
        reverse("pages:review", args=[second.id]), {"prediction": last.id, "decision": "agree"}
    )
    assert response.url == reverse("pages:worklist")
    assert Review.objects.get(prediction=last).final_label == "pneumonia"


def test_a_study_with_two_results_stays_until_both_are_reviewed(radiologist_client):
    model = make_aimodel()
    study = StudyFactory()
    one = make_prediction(make_image(study, name="a.png"), model, label="normal", confidence=0.8)
    two = make_prediction(make_image(study, name="b.png"), model, label="pneumonia", confidence=0.7)
    study_refresh_status(study_id=study.id)

    page = radiologist_client.get(reverse("pages:review", args=[study.id]))
    assert page.context["current"] == one and page.context["remaining"] == 2
    response = radiologist_client.post(
        reverse("pages:review", args=[study.id]), {"prediction": one.id, "decision": "agree"}
    )
    assert response.url == reverse("pages:review", args=[study.id])
    assert radiologist_client.get(response.url).context["current"] == two


def test_invalid_override_shows_the_error_and_saves_nothing(radiologist_client):
    study = done_study(make_aimodel(), label="pneumonia")
    prediction = study.images.get().predictions.get()
    response = radiologist_client.post(
        reverse("pages:review", args=[study.id]),
        {"prediction": prediction.id, "decision": "override", "final_label": "pneumonia"},
    )
    assert response.status_code == 200
    assert "final_label" in response.context["form"].errors
    assert not Review.objects.exists()


def test_review_page_without_a_finished_result_explains_why(radiologist_client):
    model = make_aimodel()
    study = StudyFactory()
    make_prediction(make_image(study), model, status=PredictionStatus.FAILED, error="Out of memory.")
    html = radiologist_client.get(reverse("pages:review", args=[study.id])).content.decode()
    assert "No AI second opinion to review" in html and "Out of memory." in html


def test_review_page_says_when_the_heatmap_is_still_coming(radiologist_client):
    study = done_study(make_aimodel(gradcam_layer="features"))
    html = radiologist_client.get(reverse("pages:review", args=[study.id])).content.decode()
    assert "Grad-CAM heatmap not ready yet" in html and "data-heatmap-toggle" not in html


def test_save_as_json_answers_with_the_next_study_of_the_same_filtered_worklist(radiologist_client):
    model = make_aimodel()
    current = done_study(model, modality="DX", priority=Priority.URGENT)
    done_study(model, modality="CR", priority=Priority.STAT)  # first in triage order, but filtered out
    following = done_study(model, modality="DX", priority=Priority.ROUTINE)
    prediction = current.images.get().predictions.get()

    response = radiologist_client.post(
        reverse("pages:review", args=[current.id]),
        {"prediction": prediction.id, "decision": "agree", "worklist_query": "modality=DX&status=ai_done"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["ok"] is True
    assert answer["next"] == reverse("pages:review", args=[following.id]) + "?modality=DX&status=ai_done"
    assert "agree" in answer["message"]
    assert Review.objects.get(prediction=prediction).final_label == "pneumonia"


def test_images_are_read_in_file_name_order_and_paged_keeping_the_filters(radiologist_client):
    model = make_aimodel()
    study = StudyFactory()
    for name in ("img-10.png", "img-2.png", "img-1.png"):  # uploaded out of order
        make_prediction(make_image(study, name=name), model)
    study_refresh_status(study_id=study.id)

    response = radiologist_client.get(reverse("pages:review", args=[study.id]), {"modality": "DX"})
    assert [image.original_filename for image in response.context["images"]] == ["img-1.png", "img-2.png", "img-10.png"]
    assert response.context["current_image"].original_filename == "img-1.png"
    assert (response.context["position"], response.context["total"]) == (1, 3)
    assert response.context["previous_url"] is None
    second = radiologist_client.get(response.context["next_url"])
    assert second.context["current_image"].original_filename == "img-2.png"
    assert "modality=DX" in second.context["next_url"]
    html = second.content.decode()
    assert 'name="worklist_query" value="modality=DX"' in html
    assert "2 of 3" in html


def test_override_starts_without_the_ai_label_and_asks_for_one(radiologist_client):
    study = done_study(make_aimodel(), label="pneumonia")
    prediction = study.images.get().predictions.get()
    page = radiologist_client.get(reverse("pages:review", args=[study.id])).content.decode()
    assert '<option value="">Choose the label you read</option>' in page

    response = radiologist_client.post(
        reverse("pages:review", args=[study.id]),
        {"prediction": prediction.id, "decision": "override", "final_label": ""},
    )
    html = response.content.decode()
    assert response.context["form"].errors["final_label"] == ["Choose the label you read: an override needs one."]
    assert 'id="id_final_label_error"' in html and 'aria-describedby="id_final_label_error"' in html
    assert not Review.objects.exists()


def test_review_page_lists_its_keyboard_shortcuts(radiologist_client):
    study = done_study(make_aimodel())
    html = radiologist_client.get(reverse("pages:review", args=[study.id])).content.decode()
    assert "<dialog" in html and "Keyboard shortcuts" in html
    for shortcut in ("Next image", "Previous image", "Agree with the AI second opinion", "Grad-CAM heatmap on or off"):
        assert shortcut in html
    assert 'aria-keyshortcuts="s Control+Enter"' in html
    assert "Window presets: Full range, High contrast, Bright, Dark" in html


def test_a_declined_result_opened_by_its_link_shows_why_and_cannot_be_reviewed(radiologist_client):
    model, other = make_aimodel(), make_aimodel(name="cxr-other")
    study = StudyFactory()
    image = make_image(study)
    labelled = make_prediction(image, model)
    reason = "Not run: this image is in colour; the chest X-ray images this model was trained on are greyscale."
    declined = make_prediction(image, other, status=PredictionStatus.FAILED, error=reason)
    url = reverse("pages:review", args=[study.id])

    response = radiologist_client.get(url, {"prediction": declined.id})
    html = response.content.decode()
    assert response.context["current"] == declined and response.context["form"] is None
    assert "No AI second opinion for this image" in html and reason in html and "Not run" in html
    assert "cxr-other v" in html and "data-review-form" not in html and "data-ai-label" not in html
    assert f'href="{reverse("pages:prediction-report", args=[declined.id])}"' in html
    assert "1 AI second opinion of this study to review" in html  # the labelled one is still waiting
    assert "did not read" in html and "could not read" not in html

    for post in ({"decision": "agree", "final_label": "pneumonia"}, {"amend": "1", "decision": "agree"}):
        response = radiologist_client.post(url, {"prediction": declined.id, **post}, follow=True)
        assert response.status_code == 200
        assert "There is no AI second opinion to review for that image" in response.content.decode()
    assert not Review.objects.exists()

    # The study's own result is still reviewed as before.
    response = radiologist_client.get(url)
    assert response.context["current"] == labelled and response.context["form"] is not None
