"""Volunteer site: pages, accounts and the JSON API (included from labelapp/urls.py)."""

from django.urls import include, path

from labelapp.views import collections, results, talk, volunteer

urlpatterns = [
    path("classify/", volunteer.classify, name="classify"),
    path("tutorial/", volunteer.tutorial, name="tutorial"),
    path("tutorial/done/", volunteer.tutorial_finish, name="tutorial-done"),
    path("field-guide/", volunteer.field_guide, name="field-guide"),
    path("field-guide/<slug:kind>.png", volunteer.field_guide_png, name="field-guide-png"),
    path("field-guide/drawer/", volunteer.field_guide_drawer, name="field-guide-drawer"),
    path("me/", volunteer.me, name="me"),
    path("results/", results.results, name="results"),
    path("privacy/", results.privacy, name="privacy"),
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
    # Talk: boards, a thread per candidate, hashtags, flags, moderation, notifications
    path("talk/", talk.talk_home, name="talk"),
    path("talk/boards/<slug:board>/", talk.board, name="talk-board"),
    path("talk/boards/<slug:board>/new/", talk.thread_create, name="talk-thread-new"),
    path("talk/threads/<int:thread_id>/", talk.thread, name="talk-thread"),
    path("talk/threads/<int:thread_id>/comment/", talk.comment_create, name="talk-comment"),
    path("talk/candidates/<int:detectid>/", talk.candidate, name="talk-candidate"),
    path(
        "talk/candidates/<int:detectid>/comment/",
        talk.candidate_comment,
        name="talk-candidate-comment",
    ),
    path("talk/candidates/<int:detectid>/flag/", talk.candidate_flag, name="talk-flag"),
    path("talk/tags/<str:tag>/", talk.hashtag, name="talk-tag"),
    path("talk/comments/<int:comment_id>/report/", talk.comment_report, name="talk-report"),
    path("talk/comments/<int:comment_id>/hide/", talk.comment_hide, name="talk-hide"),
    path("talk/comments/<int:comment_id>/suspend/", talk.comment_suspend, name="talk-suspend"),
    path("talk/moderation/", talk.moderation, name="talk-moderation"),
    path("talk/reports/<int:pk>/dismiss/", talk.report_dismiss, name="talk-report-dismiss"),
    path("talk/suspensions/<int:pk>/lift/", talk.suspension_lift, name="talk-lift"),
    path("talk/notifications/", talk.notifications, name="talk-notifications"),
    path("accounts/signup/", volunteer.signup, name="signup"),
    path("accounts/login/", volunteer.VolunteerLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    # the JSON API and its page /api/ are first in labelapp/urls.py
]
