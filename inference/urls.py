from django.urls import path

from inference import views

urlpatterns = [
    path("worklist/", views.worklist, name="worklist"),
    path("review/<uuid:study_id>/", views.review, name="review"),
    path("predictions/<uuid:prediction_id>/heatmap.png", views.prediction_heatmap, name="prediction-heatmap"),
    path("studies/<uuid:study_id>/report/", views.study_report, name="study-report"),
    path("predictions/<uuid:prediction_id>/heatmap-overlay.png", views.prediction_overlay, name="prediction-overlay"),
    path("predictions/<uuid:prediction_id>/report.dcm", views.prediction_report, name="prediction-report"),
]
