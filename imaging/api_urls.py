from django.urls import path

from imaging import apis

urlpatterns = [
    path("studies/", apis.StudyListApi.as_view(), name="study-list"),
    path("studies/<uuid:study_id>/", apis.StudyDetailApi.as_view(), name="study-detail"),
    path("studies/<uuid:study_id>/images/", apis.StudyImagesApi.as_view(), name="study-images"),
    path("studies/<uuid:study_id>/rerun/", apis.StudyRerunApi.as_view(), name="study-rerun"),
    path("images/", apis.ImageListApi.as_view(), name="image-list"),
    path("images/<uuid:image_id>/", apis.ImageDetailApi.as_view(), name="image-detail"),
    path("images/<uuid:image_id>/file/", apis.ImageFileApi.as_view(), name="image-file"),
    path("images/<uuid:image_id>/render/", apis.ImageRenderApi.as_view(), name="image-render"),
    path("images/<uuid:image_id>/rerun/", apis.ImageRerunApi.as_view(), name="image-rerun"),
]
