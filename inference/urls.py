from django.urls import path

from inference import prior_views, study_views, views

urlpatterns = [
    path("dicom/import/", study_views.dicom_import, name="dicom-import"),
    path("studies/<uuid:study_id>/", study_views.study_detail, name="study-detail"),
    path("studies/<uuid:study_id>/results/", study_views.study_results, name="study-results"),
    path("studies/<uuid:study_id>/upload/", study_views.study_upload, name="study-upload"),
    path("worklist/", views.worklist, name="worklist"),
    path("worklist/rows/", views.worklist_rows, name="worklist-rows"),
    path("review/<uuid:study_id>/", views.review, name="review"),
    path("review/<uuid:study_id>/agree-all/", views.review_agree_all, name="review-agree-all"),
    path("review/<uuid:study_id>/priors/", prior_views.review_priors, name="review-priors"),
    path("predictions/<uuid:prediction_id>/heatmap.png", views.prediction_heatmap, name="prediction-heatmap"),
    path("studies/<uuid:study_id>/report/", views.study_report, name="study-report"),
    path("predictions/<uuid:prediction_id>/heatmap-overlay.png", views.prediction_overlay, name="prediction-overlay"),
    path("predictions/<uuid:prediction_id>/report.dcm", views.prediction_report, name="prediction-report"),
]
