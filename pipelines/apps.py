from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, once the models are: both need them.
        from pipelines import checks, logs, registry, steering  # noqa: F401 - checks register themselves
        from pipelines.controls import Controls

        logs.install()
        steering.install(Controls())
        registry.autodiscover()
