from django.urls import reverse


def absolute_url(context: dict, path: str) -> str:
    """An absolute URL when the serializer has the request in its context, else the path."""
    request = context.get("request")
    return request.build_absolute_uri(path) if request is not None else path


def api_url(context: dict, name: str, **kwargs) -> str:
    """A URL of the API itself: responses never link to a page, which would answer a token with a login form."""
    return absolute_url(context, reverse(f"api:{name}", kwargs=kwargs))
