"""Sending tasks: only ``inference.dispatch`` does it, and a broker outage never loses work."""

import ast
from pathlib import Path

import pytest
from celery import current_app

from imaging.intake import image_upload
from inference import dispatch
from inference.models import Prediction, PredictionStatus
from inference.tasks import prediction_run
from tests.conftest import REPO_ROOT
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def project_modules():
    """Every module of the project's own packages (not the tests, not the virtualenv)."""
    for package in sorted(REPO_ROOT.glob("*/__init__.py")):
        if package.parent.name != "tests":
            yield from package.parent.rglob("*.py")


def test_only_the_dispatch_module_sends_tasks():
    senders = []
    for path in project_modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr in {"delay", "apply_async", "send_task"}:
                senders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert senders and all(s.startswith("inference/dispatch.py:") for s in senders), senders


def _inference_imports(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        imported |= {name for name in names if name.count(".") == 1 and name.startswith("inference.")}
    return imported


def test_the_inference_modules_import_each_other_one_way():
    modules = {f"inference.{p.stem}": p for p in (REPO_ROOT / "inference").glob("*.py")}
    graph = {name: _inference_imports(path) & set(modules) for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for imported in graph[name]:
            visit(imported, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
    # The worker side and the dispatcher never reach back into the web side.
    for worker_side in ("inference.claims", "inference.dispatch", "inference.runtime", "inference.study_status"):
        assert "inference.services" not in graph[worker_side]


@pytest.fixture
def sent(monkeypatch):
    """Every task sent, as (task name, kwargs, options), instead of going to the broker."""
    log = []
    for name in (dispatch.PREDICTION_RUN, dispatch.PREDICTION_HEATMAPS):
        task = current_app.tasks[name]
        monkeypatch.setattr(
            task, "apply_async", lambda kwargs, name=name, **options: log.append((name, kwargs, options))
        )
    return log


def test_an_upload_sends_its_tasks_only_once_it_commits(
    tiny_model, sample_image_bytes, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        prediction = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).followups[0]
        assert sent == []
    for callback in callbacks:
        callback()
    assert sent == [
        (dispatch.PREDICTION_RUN, {"prediction_id": str(prediction.id)}, {"queue": tiny_model.queue, "retry": False})
    ]
    assert Prediction.objects.get(id=prediction.id).enqueued_at is not None


def test_a_send_the_broker_refuses_is_left_for_the_sweeper(tiny_model, sample_image_bytes, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(current_app.tasks[dispatch.PREDICTION_RUN], "apply_async", unreachable)
    prediction = image_upload(study=StudyFactory(), data=sample_image_bytes("cxr-normal-1.png")).followups[0]

    assert dispatch.predictions_send([(prediction.id, tiny_model.queue)], marked=True) == 0
    prediction.refresh_from_db()
    assert prediction.status == PredictionStatus.QUEUED and prediction.enqueued_at is None


def test_heatmaps_go_one_task_per_queue_and_batch(sent, settings):
    settings.MEDPORTAL_BATCH_SIZE = 2
    work = [(f"id-{n}", "gpu-a") for n in range(3)] + [("id-9", "gpu-b")]

    assert dispatch.heatmaps_send(work) == 4

    assert [(kwargs["prediction_ids"], options["queue"]) for _, kwargs, options in sent] == [
        (["id-0", "id-1"], "gpu-a"),
        (["id-2"], "gpu-a"),
        (["id-9"], "gpu-b"),
    ]
    assert {options["priority"] for _, _, options in sent} == {settings.MEDPORTAL_HEATMAP_PRIORITY}


def test_the_run_task_sends_the_heatmaps_its_batch_asks_for(tiny_model, sample_image_bytes, sent):
    study = StudyFactory()
    ids = {
        str(image_upload(study=study, data=sample_image_bytes(name)).followups[0].id)
        for name in ("cxr-normal-1.png", "cxr-pneumonia-1.png")
    }
    sent.clear()

    assert prediction_run(prediction_id=sorted(ids)[0]) == 2

    [(name, kwargs, options)] = sent
    assert name == dispatch.PREDICTION_HEATMAPS and set(kwargs["prediction_ids"]) == ids
    assert options["queue"] == tiny_model.queue
