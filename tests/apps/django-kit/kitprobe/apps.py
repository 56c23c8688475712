from django.apps import AppConfig


class KitprobeConfig(AppConfig):
    name = "kitprobe"

    def ready(self):
        from . import receivers  # noqa: F401  (connects the receivers)
