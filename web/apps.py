from django.apps import AppConfig


class WebConfig(AppConfig):
    """The pages' shared layer (role checks, auditing, charts, template tags), the home dashboards,
    the 503 answer to a database outage, and the demo set-up of the embedded default."""

    name = "web"
    verbose_name = "Clinical web pages"
