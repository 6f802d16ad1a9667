from django.apps import AppConfig


class WebConfig(AppConfig):
    """The pages' shared layer (role checks, auditing, charts, template tags) and the home dashboards."""

    name = "web"
    verbose_name = "Clinical web pages"
