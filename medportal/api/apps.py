from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "medportal.api"
    label = "api"
    verbose_name = "API access"
