from stack.api import png_bytes


def upload_each(stack, study: str, count: int, *, seed: int, size: int = 96) -> list[str]:
    """Upload ``count`` distinct images one request at a time; returns the queued prediction ids."""
    ids = []
    for index in range(count):
        status, body = stack.api.upload(
            study, [(f"image-{seed + index}.png", png_bytes(seed + index, size), "image/png")]
        )
        assert status == 201, (status, body)
        ids += [prediction["id"] for prediction in body["images"][0]["predictions"]]
    return ids
