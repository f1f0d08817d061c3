"""A host project's URLconf without the dashboard (``pipelines.urls`` not included)."""

urlpatterns: list[object] = []
