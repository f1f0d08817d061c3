from django.urls import path

from pipelines.views import actions, pages

app_name = "pipelines"

urlpatterns = [
    path("", pages.overview, name="overview"),
    path("runs/", pages.runs, name="runs"),
    path("runs/<int:run_id>/", pages.run_detail, name="run"),
    path("runs/<int:run_id>/live/", pages.run_live, name="run-live"),
    path("runs/<int:run_id>/context/", pages.run_context, name="run-context"),
    path("runs/<int:run_id>/cancel/", actions.cancel, name="cancel"),
    path("runs/<int:run_id>/retry/", actions.retry, name="retry"),
    path("runs/<int:run_id>/rerun/", actions.rerun, name="rerun"),
    path("runs/<int:run_id>/event/", actions.send_event, name="send-event"),
]
