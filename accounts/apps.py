from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Connects the receiver that stamps the log in time, once every app is loaded (Django's place for receivers).
        from accounts import sessions  # noqa: F401, PLC0415
