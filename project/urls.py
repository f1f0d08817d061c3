from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/pipelines/", permanent=False)),
    path("admin/", admin.site.urls),
    path("pipelines/", include("pipelines.urls")),
    path("demo/", include("project.demo.urls")),
]
