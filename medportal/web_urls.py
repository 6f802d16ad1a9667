"""Server-rendered pages. Each app contributes its own urls module."""

urlpatterns: list = []
