from django.urls import path

from imaging.dicomweb import views

app_name = "dicomweb"

_series = "studies/<str:study_uid>/series/<str:series_uid>"
_instance = f"{_series}/instances/<str:instance_uid>"

urlpatterns = [
    path("studies", views.StudiesApi.as_view(), name="studies"),
    path("studies/<str:study_uid>", views.StudyApi.as_view(), name="study"),
    path("studies/<str:study_uid>/metadata", views.MetadataApi.as_view(), name="study-metadata"),
    path("studies/<str:study_uid>/series", views.SeriesSearchApi.as_view(), name="study-series"),
    path("studies/<str:study_uid>/instances", views.InstanceSearchApi.as_view(), name="study-instances"),
    path(_series, views.RetrieveApi.as_view(), name="series"),
    path(f"{_series}/metadata", views.MetadataApi.as_view(), name="series-metadata"),
    path(f"{_series}/instances", views.InstanceSearchApi.as_view(), name="series-instances"),
    path(_instance, views.RetrieveApi.as_view(), name="instance"),
    path(f"{_instance}/metadata", views.MetadataApi.as_view(), name="instance-metadata"),
    path(f"{_instance}/frames/<str:frames>", views.FramesApi.as_view(), name="instance-frames"),
]
