from django.apps import AppConfig


class LabelappConfig(AppConfig):
    name = "labelapp"
    verbose_name = "Dark Energy Explorers labelling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Before any command touches the SQLite file, a store, the cache or the broker.
        from labelapp.datadirs import ensure_data_dirs

        ensure_data_dirs()
        # the user_login_failed receiver of the one log-in limiter (labelapp.auth_backends)
        # gold saved or deleted in this process: levels_in_force asks the table again
        from django.db.models.signals import post_delete, post_save

        from labelapp import auth_backends  # noqa: F401
        from labelapp.models import GoldStandard
        from labelapp.services.crowd.levels import forget_levels_in_force

        for signal in (post_save, post_delete):
            signal.connect(forget_levels_in_force, sender=GoldStandard, dispatch_uid="gold-levels")
