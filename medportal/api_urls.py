"""REST API routes (mounted at /api/v1/). Each app contributes its own api_urls module."""

urlpatterns: list = []
