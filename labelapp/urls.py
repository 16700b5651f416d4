from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from labelapp.views import api as volunteer_api
from labelapp.views import health, pages
from labelapp.views.science_api import api as science_api

urlpatterns = [
    # The classify page's JSON API (django-ninja, labelapp/views/api.py) first: a vote is
    # the most frequent request, and resolving it behind the 60 patterns of the pages was a
    # measurable share of its CPU (bench_vote_view.py). /api/ itself is the API's page
    # (before ninja's own root). The scientists' API under /api/science/v1/ is not shadowed:
    # no volunteer route starts with "science/".
    path("api/", volunteer_api.docs, name="api-docs"),
    path("api/", volunteer_api.urls()),
    path("", pages.home, name="home"),
    path("candidates/<int:detectid>/", pages.candidate_detail, name="candidate-detail"),
    path("candidates/<int:detectid>/cutout.png", pages.candidate_cutout, name="candidate-cutout"),
    path("healthz", health.healthz, name="healthz"),
    # set_language (the volunteer pages' language switcher) and the volunteer scripts'
    # translations (locale/*/djangojs.po), served as a script from this origin (CSP allows it)
    path("i18n/", include("django.conf.urls.i18n")),
    path(
        "i18n/js/",
        JavaScriptCatalog.as_view(packages=["labelapp"]),
        name="javascript-catalog",
    ),
    path("console/", include("labelapp.urls_console")),
    path("api/science/v1/", science_api.urls),
    path("admin/", admin.site.urls),
    path("", include("labelapp.urls_volunteer")),
]

# JSON errors for /api/ (unknown paths, unreadable requests, crashes); 503 + Retry-After
# while the database or Redis is unreachable.
handler400 = "labelapp.views.errors.bad_request"
handler404 = "labelapp.views.errors.page_not_found"
handler500 = "labelapp.views.errors.server_error"
