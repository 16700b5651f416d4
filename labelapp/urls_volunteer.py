"""Volunteer site: pages, accounts and the JSON API (included from labelapp/urls.py)."""

from django.urls import include, path

from labelapp.views import api, volunteer

urlpatterns = [
    path("classify/", volunteer.classify, name="classify"),
    path("tutorial/", volunteer.tutorial, name="tutorial"),
    path("tutorial/done/", volunteer.tutorial_finish, name="tutorial-done"),
    path("field-guide/", volunteer.field_guide, name="field-guide"),
    path("field-guide/<slug:kind>.png", volunteer.field_guide_png, name="field-guide-png"),
    path("me/", volunteer.me, name="me"),
    path("accounts/signup/", volunteer.signup, name="signup"),
    path("accounts/login/", volunteer.VolunteerLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", api.docs, name="api-docs"),
    path("api/openapi.json", api.schema, name="api-schema"),
    path("api/next/", api.next_candidate, name="api-next"),
    path("api/votes/", api.vote, name="api-vote"),
    path("api/votes/undo/", api.undo, name="api-undo"),
    path("api/votes/reason/", api.vote_reason, name="api-reason"),
    path("api/candidates/<int:detectid>/spectrum/", api.spectrum, name="api-spectrum"),
]
