from django.urls import path

from imaging.dicomweb.qido import InstanceSearchApi, SeriesSearchApi, StudySearchApi
from imaging.dicomweb.rendered import RenderedApi, ThumbnailApi
from imaging.dicomweb.stow import StowRsApi
from imaging.dicomweb.wado import BulkDataApi, FramesApi, MetadataApi, RetrieveApi

app_name = "dicomweb"


# Two URLs serve two services, told apart by the method: POST stores (STOW-RS), GET searches or retrieves.
class StudiesApi(StowRsApi, StudySearchApi):
    """/dicomweb/studies: GET searches studies (QIDO-RS), POST stores instances (STOW-RS)."""

    required_roles = {**StowRsApi.required_roles, **StudySearchApi.required_roles}


class StudyApi(StowRsApi, RetrieveApi):
    """/dicomweb/studies/{study}: GET retrieves the study (WADO-RS), POST stores into it (STOW-RS)."""

    required_roles = {**StowRsApi.required_roles, **RetrieveApi.required_roles}


_series = "studies/<str:study_uid>/series/<str:series_uid>"
_instance = f"{_series}/instances/<str:instance_uid>"

_study = "studies/<str:study_uid>"
_frames = f"{_instance}/frames/<str:frames>"

urlpatterns = [
    path("studies", StudiesApi.as_view(), name="studies"),
    path("series", SeriesSearchApi.as_view(), name="series-search"),
    path("instances", InstanceSearchApi.as_view(), name="instance-search"),
    path("studies/<str:study_uid>", StudyApi.as_view(), name="study"),
    path("studies/<str:study_uid>/metadata", MetadataApi.as_view(), name="study-metadata"),
    path("studies/<str:study_uid>/series", SeriesSearchApi.as_view(), name="study-series"),
    path("studies/<str:study_uid>/instances", InstanceSearchApi.as_view(), name="study-instances"),
    path(_series, RetrieveApi.as_view(), name="series"),
    path(f"{_series}/metadata", MetadataApi.as_view(), name="series-metadata"),
    path(f"{_series}/instances", InstanceSearchApi.as_view(), name="series-instances"),
    path(_instance, RetrieveApi.as_view(), name="instance"),
    path(f"{_instance}/metadata", MetadataApi.as_view(), name="instance-metadata"),
    path(f"{_instance}/frames/<str:frames>", FramesApi.as_view(), name="instance-frames"),
    path(f"{_instance}/bulkdata/<path:path>", BulkDataApi.as_view(), name="instance-bulkdata"),
    # Consumer images: one picture of the study, series, instance or frame.
    *(
        path(f"{prefix}/{kind}", view.as_view(), name=f"{level}-{kind}")
        for level, prefix in (("study", _study), ("series", _series), ("instance", _instance), ("frames", _frames))
        for kind, view in (("rendered", RenderedApi), ("thumbnail", ThumbnailApi))
    ),
]
