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
        from labelapp import auth_backends  # noqa: F401
