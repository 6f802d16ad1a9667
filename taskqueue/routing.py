from django.conf import settings


def route_task(name: str, args, kwargs, options, task=None, **extra) -> dict | None:
    """Inference goes to the GPU queue; everything else to the default queue."""
    if name.startswith(("inference.tasks.prediction_run", "inference.tasks.prediction_heatmaps")):
        return {"queue": settings.MEDPORTAL_GPU_QUEUE}
    return {"queue": settings.CELERY_TASK_DEFAULT_QUEUE}
