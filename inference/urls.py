from django.urls import path

from inference import views

urlpatterns = [
    path("worklist/", views.worklist, name="worklist"),
    path("review/<uuid:study_id>/", views.review, name="review"),
    path("predictions/<uuid:prediction_id>/heatmap.png", views.prediction_heatmap, name="prediction-heatmap"),
    path("predictions/<uuid:prediction_id>/report.dcm", views.prediction_report, name="prediction-report"),
]
