from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "AI inference"

    def ready(self) -> None:
        # Imported here, once the apps are loaded: models cannot be imported while they load.
        from imaging.signals import images_stored  # noqa: PLC0415
        from inference import tasks  # noqa: F401, PLC0415
        from inference.services import predictions_for_stored_images  # noqa: PLC0415

        # Every stored image, whichever way it came in, gets its AI work in the same transaction.
        images_stored.connect(predictions_for_stored_images, dispatch_uid="inference.predictions_for_stored_images")
        # ``tasks`` is imported so that Celery knows the tasks in every process (the web, the DICOM
        # receiver), where ``inference.dispatch`` finds them by name.
