from django.urls import path

from imaging import apis

urlpatterns = [
    path("studies/", apis.StudyListApi.as_view(), name="study-list"),
    path("studies/<uuid:study_id>/", apis.StudyDetailApi.as_view(), name="study-detail"),
    path("images/", apis.ImageListApi.as_view(), name="image-list"),
    path("images/<uuid:image_id>/", apis.ImageDetailApi.as_view(), name="image-detail"),
    path("images/<uuid:image_id>/file/", apis.ImageFileApi.as_view(), name="image-file"),
    path("images/<uuid:image_id>/render/", apis.ImageRenderApi.as_view(), name="image-render"),
]
