from django.apps import AppConfig


class LabelappConfig(AppConfig):
    name = "labelapp"
    verbose_name = "Dark Energy Explorers labelling"
    default_auto_field = "django.db.models.BigAutoField"
