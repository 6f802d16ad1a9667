from django.urls import path

from inference import apis, study_apis

urlpatterns = [
    path("studies/<uuid:study_id>/images/", study_apis.StudyImagesApi.as_view(), name="study-images"),
    path("studies/<uuid:study_id>/rerun/", study_apis.StudyRerunApi.as_view(), name="study-rerun"),
    path("images/<uuid:image_id>/rerun/", study_apis.ImageRerunApi.as_view(), name="image-rerun"),
    path("predictions/", apis.PredictionListApi.as_view(), name="prediction-list"),
    path("predictions/<uuid:prediction_id>/", apis.PredictionDetailApi.as_view(), name="prediction-detail"),
    path("predictions/<uuid:prediction_id>/heatmap/", apis.PredictionHeatmapApi.as_view(), name="prediction-heatmap"),
    path("predictions/<uuid:prediction_id>/report/", apis.PredictionReportApi.as_view(), name="prediction-report"),
    path("models/", apis.AIModelListApi.as_view(), name="aimodel-list"),
    path("models/<uuid:model_id>/", apis.AIModelDetailApi.as_view(), name="aimodel-detail"),
    path("models/<uuid:model_id>/activate/", apis.AIModelActivateApi.as_view(), name="aimodel-activate"),
    path("models/<uuid:model_id>/retire/", apis.AIModelRetireApi.as_view(), name="aimodel-retire"),
    path("reviews/", apis.ReviewListApi.as_view(), name="review-list"),
    path("worklist/", apis.WorklistApi.as_view(), name="worklist"),
    path("reviews/<uuid:review_id>/", apis.ReviewDetailApi.as_view(), name="review-detail"),
    path("reviews/<uuid:review_id>/amendments/", apis.ReviewAmendmentsApi.as_view(), name="review-amendments"),
]
