from django.urls import include, path

from tests.testapp import async_views

urlpatterns = [
    path("async/trigger/", async_views.trigger),
    path("async/runs/<int:run_id>/", async_views.show),
    path("async/runs/<int:run_id>/<str:action>/", async_views.steer),
    path("pipelines/", include("pipelines.urls")),
]
