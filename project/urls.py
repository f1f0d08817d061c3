from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/pipelines/", permanent=False)),
    path("admin/", admin.site.urls),
    path("pipelines/", include("pipelines.urls")),
]
# The demo's order form exists only where the settings install the demo (DEMO).
if apps.is_installed("project.demo"):
    urlpatterns.append(path("demo/", include("project.demo.urls")))
