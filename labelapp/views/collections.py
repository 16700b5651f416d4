"""Favourites and collections pages (services.crowd.collections does the work). Thin.

Writes are POST forms with Django's CSRF token (the favourite button on the classify page
posts with the X-CSRFToken header and gets JSON back). Saving needs an account: favourites
and collections are kept for good, and a share link names its owner.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from labelapp.errors import NotFound, PlatformError
from labelapp.services.crowd import collections as coll
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.views.errors import http_status


def _next(request, default: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _volunteer(request):
    return get_volunteer(session=request.session, user=request.user, create=True)


@require_GET
@login_required
def collections_home(request):
    volunteer = _volunteer(request)
    favourites = coll.list_favourites(volunteer=volunteer)
    return render(
        request,
        "volunteer/collections.html",
        {
            "collections": coll.list_collections(volunteer=volunteer),
            "favourites": favourites,
            "favourites_ids": {c.detectid for c in favourites},
            "limits": {"name": coll.NAME_MAX, "description": coll.DESCRIPTION_MAX,
                       "collections": coll.MAX_COLLECTIONS},
        },
    )  # fmt: skip


@require_POST
@login_required
def collection_create(request):
    try:
        created = coll.create_collection(
            volunteer=_volunteer(request),
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
            public=request.POST.get("public") == "on",
        )
    except PlatformError as exc:
        messages.error(request, _("Not created: %(why)s.") % {"why": exc.message})
        return redirect("collections")
    detectid = request.POST.get("detectid")
    if detectid:
        try:
            coll.add_to_collection(volunteer=created.owner, token=created.token, detectid=detectid)
        except PlatformError as exc:
            messages.error(
                request,
                _("Created, but the candidate was not added: %(why)s.") % {"why": exc.message},
            )
    messages.success(request, _("Collection “%(name)s” created.") % {"name": created.name})
    return redirect(_next(request, reverse("collection", args=[created.token])))


@require_GET
def collection_detail(request, token: str):
    viewer = get_volunteer(session=request.session, user=request.user)
    try:
        collection = coll.get_collection(token=token, viewer=viewer)
    except NotFound as exc:
        raise Http404(exc.message) from None
    owner = viewer is not None and collection.owner_id == viewer.pk
    items = coll.collection_items(collection=collection)
    return render(
        request,
        "volunteer/collection.html",
        {
            "collection": collection,
            "items": items,
            "owner": owner,
            "owner_name": _owner_name(collection),
            "n_items": collection.items.count(),
            "share_url": request.build_absolute_uri(reverse("collection", args=[token])),
            "favourites": coll.favourite_detectids(
                volunteer=viewer, detectids=[c.detectid for c in items]
            ) if owner else set(),
            "limits": {"name": coll.NAME_MAX, "description": coll.DESCRIPTION_MAX},
        },
    )  # fmt: skip


def _owner_name(collection) -> str:
    user = collection.owner.user
    return user.get_username() if user is not None else "a volunteer"


@require_POST
@login_required
def collection_edit(request, token: str):
    try:
        coll.update_collection(
            volunteer=_volunteer(request),
            token=token,
            name=request.POST.get("name"),
            description=request.POST.get("description"),
            public=request.POST.get("public") == "on" if "visibility" in request.POST else None,
        )
        messages.success(request, _("Saved."))
    except NotFound as exc:
        raise Http404(exc.message) from None
    except PlatformError as exc:
        messages.error(request, _("Not saved: %(why)s.") % {"why": exc.message})
    return redirect("collection", token=token)


@require_POST
@login_required
def collection_delete(request, token: str):
    try:
        coll.delete_collection(volunteer=_volunteer(request), token=token)
    except NotFound as exc:
        raise Http404(exc.message) from None
    messages.success(request, _("Collection deleted."))
    return redirect("collections")


@require_POST
@login_required
def collection_items(request, token: str | None = None):
    """Add (``action=add``) or remove (``action=remove``) candidate ``detectid``; the
    collection is in the URL, or (the "Add to" menus under thumbnails) in ``token``."""
    token = token or request.POST.get("token", "")
    action = request.POST.get("action", "add")
    volunteer = _volunteer(request)
    detectid = request.POST.get("detectid", "").strip()
    try:
        if action == "remove":
            coll.remove_from_collection(volunteer=volunteer, token=token, detectid=detectid)
            messages.success(request, _("Candidate %(id)d removed.") % {"id": int(detectid)})
        else:
            added = coll.add_to_collection(volunteer=volunteer, token=token, detectid=detectid)
            messages.success(
                request,
                (_("Candidate %(id)d added.") if added
                 else _("Candidate %(id)d was in the collection already.")) % {"id": int(detectid)},
            )  # fmt: skip
    except NotFound as exc:
        if exc.code == "not_found":  # the collection, not the candidate
            raise Http404(exc.message) from None
        messages.error(request, _("Not changed: %(why)s.") % {"why": exc.message})
    except PlatformError as exc:
        messages.error(request, _("Not changed: %(why)s.") % {"why": exc.message})
    return redirect(_next(request, reverse("collection", args=[token])))


@require_POST
def favourite_set(request):
    """Make ``detectid`` a favourite (``favourite=1``) or not (``favourite=0``): JSON for
    the classify page's button, a redirect back for the forms on the other pages."""
    if not request.user.is_authenticated:
        message = "Sign up or log in to keep favourites."
        if _wants_json(request):
            return JsonResponse({"error": {"code": "login", "message": message}}, status=403)
        return redirect(f"{reverse('login')}?next={reverse('me')}")
    want = request.POST.get("favourite", "1") not in ("0", "false", "")
    try:
        state = coll.set_favourite(
            volunteer=_volunteer(request), detectid=request.POST.get("detectid"), favourite=want
        )
    except PlatformError as exc:
        if _wants_json(request):
            return JsonResponse(
                {"error": {"code": exc.code, "message": exc.message}}, status=http_status(exc)
            )
        messages.error(request, _("Not changed: %(why)s.") % {"why": exc.message})
        return redirect(_next(request, reverse("collections")))
    if _wants_json(request):
        return JsonResponse({"detectid": int(request.POST["detectid"]), "favourite": state})
    return redirect(_next(request, reverse("collections")))
