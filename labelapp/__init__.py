"""The Django project and app of the labelling platform (business logic in ``services``)."""

from labelapp.celery import app as celery_app

__all__ = ("celery_app",)
