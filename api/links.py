def absolute_url(context: dict, path: str) -> str:
    """An absolute URL when the serializer has the request in its context, else the path."""
    request = context.get("request")
    return request.build_absolute_uri(path) if request is not None else path
