from django.apps import AppConfig


class IdlegateConfig(AppConfig):
    name = "idlegate_django"
    label = "idlegate"
    verbose_name = "idlegate"
    default_auto_field = "django.db.models.AutoField"
