from medportal.tasks import medportal_task


@medportal_task()
def prediction_run(*, prediction_id: str) -> int:
    """Run the AI on this prediction (and any others of its model waiting in the queue)."""
    from inference.runtime import run_batch

    return run_batch(prediction_id=prediction_id)


@medportal_task(time_limit=120)
def predictions_sweep() -> dict[str, int]:
    """Resend lost tasks and recover predictions from dead workers."""
    from inference.services import predictions_sweep as sweep

    return sweep()
