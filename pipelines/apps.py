from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pipelines import checks, logs, registry  # noqa: F401 - checks register themselves

        logs.install()
        registry.autodiscover()
