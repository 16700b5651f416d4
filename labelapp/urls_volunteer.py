"""Volunteer site: pages, accounts and the JSON API (included from labelapp/urls.py)."""

from django.urls import include, path

from labelapp.views import api, collections, volunteer

urlpatterns = [
    path("classify/", volunteer.classify, name="classify"),
    path("tutorial/", volunteer.tutorial, name="tutorial"),
    path("tutorial/done/", volunteer.tutorial_finish, name="tutorial-done"),
    path("field-guide/", volunteer.field_guide, name="field-guide"),
    path("field-guide/<slug:kind>.png", volunteer.field_guide_png, name="field-guide-png"),
    path("field-guide/drawer/", volunteer.field_guide_drawer, name="field-guide-drawer"),
    path("me/", volunteer.me, name="me"),
    path("collections/", collections.collections_home, name="collections"),
    path("collections/new/", collections.collection_create, name="collection-create"),
    path("collections/add/", collections.collection_items, name="collection-add"),
    path("collections/<str:token>/", collections.collection_detail, name="collection"),
    path("collections/<str:token>/edit/", collections.collection_edit, name="collection-edit"),
    path(
        "collections/<str:token>/delete/", collections.collection_delete, name="collection-delete"
    ),
    path("collections/<str:token>/items/", collections.collection_items, name="collection-items"),
    path("favourites/", collections.favourite_set, name="favourite-set"),
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
