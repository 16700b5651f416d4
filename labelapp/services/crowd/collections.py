"""Favourites and collections: volunteers save candidates, name collections of them, and
share a collection by its link or keep it to themselves.

``check_*`` validate, the others mutate (in one transaction each). Every limit is a module
constant, checked here, so the pages and any future API share them. A private collection
is ``NotFound`` for everyone but its owner (not ``Forbidden``: its existence stays private).
Names and descriptions are stored as typed; templates escape them (autoescape), and they
never go into HTML or JavaScript any other way.
"""

from __future__ import annotations

import secrets
import unicodedata

from django.db import IntegrityError, transaction
from django.utils.translation import gettext, pgettext_lazy

from labelapp.errors import InvalidInput, NotFound, UnknownCandidate
from labelapp.models import Candidate, Collection, CollectionItem, Favourite, Volunteer

NAME_MAX = 80
DESCRIPTION_MAX = 1000
MAX_COLLECTIONS = 50  # per volunteer
MAX_ITEMS = 500  # per collection
MAX_FAVOURITES = 2000  # per volunteer
PAGE_ITEMS = 60  # thumbnails shown on a collection's page


# What _clean_text's messages call each field (the subject of their sentences).
FIELD_NAMES = {
    "name": pgettext_lazy("collection field", "the name"),
    "description": pgettext_lazy("collection field", "the description"),
}


def _clean_text(value: str, *, field: str, max_len: int, required: bool) -> str:
    """Strip, refuse control characters (a line break is fine in a description), check
    the length in characters."""
    if not isinstance(value, str):
        raise InvalidInput(gettext("%(field)s must be text") % {"field": FIELD_NAMES[field]})
    value = unicodedata.normalize("NFC", value).strip()
    allowed = "\n\t" if field == "description" else ""
    bad = [ch for ch in value if unicodedata.category(ch) in ("Cc", "Cf") and ch not in allowed]
    if bad:
        raise InvalidInput(
            gettext("%(field)s contains invisible control characters: remove them")
            % {"field": FIELD_NAMES[field]}
        )
    if required and not value:
        raise InvalidInput(
            gettext("%(field)s is empty: write something first") % {"field": FIELD_NAMES[field]}
        )
    if len(value) > max_len:
        raise InvalidInput(
            gettext("%(field)s is %(n)d characters long: %(max)d at most")
            % {"field": FIELD_NAMES[field], "n": len(value), "max": max_len}
        )
    return value.replace("\r\n", "\n")


def check_name(name: str) -> str:
    return _clean_text(name, field="name", max_len=NAME_MAX, required=True)


def check_description(description: str) -> str:
    return _clean_text(description, field="description", max_len=DESCRIPTION_MAX, required=False)


def _candidate(detectid) -> Candidate:
    try:
        detectid = int(detectid)
    except (TypeError, ValueError):
        raise InvalidInput(
            gettext("detectid must be a whole number, not %(value)r")
            % {"value": str(detectid)[:40]}
        ) from None
    cand = Candidate.objects.filter(detectid=detectid).first()
    if cand is None:
        raise UnknownCandidate(
            gettext("there is no candidate with detectid %(id)s") % {"id": detectid}
        )
    return cand


# --- favourites -------------------------------------------------------------------------


@transaction.atomic
def set_favourite(*, volunteer: Volunteer, detectid, favourite: bool) -> bool:
    """Make candidate ``detectid`` a favourite of ``volunteer`` or not; idempotent (the
    client says the state it wants, so a repeated or crossed tap cannot flip it back).
    Returns the state now."""
    cand = _candidate(detectid)
    if not favourite:
        Favourite.objects.filter(volunteer=volunteer, candidate=cand).delete()
        return False
    if Favourite.objects.filter(volunteer=volunteer, candidate=cand).exists():
        return True
    Volunteer.objects.select_for_update().filter(pk=volunteer.pk).first()  # count, then add
    if Favourite.objects.filter(volunteer=volunteer).count() >= MAX_FAVOURITES:
        raise InvalidInput(
            gettext("you have %(n)d favourites, the most one account can keep: remove some first")
            % {"n": MAX_FAVOURITES}
        )
    try:
        with transaction.atomic():
            Favourite.objects.create(volunteer=volunteer, candidate=cand)
    except IntegrityError:  # the same tap twice at once
        pass
    return True


def favourite_detectids(*, volunteer: Volunteer | None, detectids=None) -> set[int]:
    """Which of ``detectids`` (all where None) are ``volunteer``'s favourites."""
    if volunteer is None:
        return set()
    qs = Favourite.objects.filter(volunteer=volunteer)
    if detectids is not None:
        qs = qs.filter(candidate__detectid__in=list(detectids))
    return set(qs.values_list("candidate__detectid", flat=True))


def list_favourites(*, volunteer: Volunteer, limit: int = PAGE_ITEMS) -> list[Candidate]:
    rows = (
        Favourite.objects.filter(volunteer=volunteer)
        .select_related("candidate")
        .order_by("-created_at")[:limit]
    )
    return [f.candidate for f in rows]


# --- collections ------------------------------------------------------------------------


def new_token() -> str:
    return secrets.token_urlsafe(12)  # 16 characters, 96 random bits


@transaction.atomic
def create_collection(
    *, volunteer: Volunteer, name: str, description: str = "", public: bool = False
) -> Collection:
    name, description = check_name(name), check_description(description)
    Volunteer.objects.select_for_update().filter(pk=volunteer.pk).first()
    if Collection.objects.filter(owner=volunteer).count() >= MAX_COLLECTIONS:
        raise InvalidInput(
            gettext("you have %(n)d collections, the most one account can have: delete one first")
            % {"n": MAX_COLLECTIONS}
        )
    if Collection.objects.filter(owner=volunteer, name=name).exists():
        raise InvalidInput(
            gettext("you already have a collection called %(name)r: pick another name")
            % {"name": name}
        )
    return Collection.objects.create(
        owner=volunteer, name=name, description=description, public=bool(public),
        token=new_token(),
    )  # fmt: skip


def get_collection(*, token: str, viewer: Volunteer | None) -> Collection:
    """The collection behind a share link, if ``viewer`` may read it: public, or theirs."""
    coll = Collection.objects.filter(token=str(token)[:24]).select_related("owner__user").first()
    if coll is None or not (coll.public or (viewer is not None and coll.owner_id == viewer.pk)):
        raise NotFound(gettext("there is no collection at this address, or it is private"))
    return coll


def _owned(*, volunteer: Volunteer, token: str, lock: bool = False) -> Collection:
    qs = Collection.objects.filter(token=str(token)[:24], owner=volunteer)
    coll = (qs.select_for_update() if lock else qs).first()
    if coll is None:
        raise NotFound(gettext("you have no collection at this address"))
    return coll


@transaction.atomic
def update_collection(
    *,
    volunteer: Volunteer,
    token: str,
    name: str | None = None,
    description: str | None = None,
    public: bool | None = None,
) -> Collection:
    coll = _owned(volunteer=volunteer, token=token, lock=True)
    if name is not None:
        name = check_name(name)
        if name != coll.name and Collection.objects.filter(owner=volunteer, name=name).exists():
            raise InvalidInput(
                gettext("you already have a collection called %(name)r: pick another name")
                % {"name": name}
            )
        coll.name = name
    if description is not None:
        coll.description = check_description(description)
    if public is not None:
        coll.public = bool(public)
    coll.save()
    return coll


@transaction.atomic
def delete_collection(*, volunteer: Volunteer, token: str) -> None:
    _owned(volunteer=volunteer, token=token, lock=True).delete()


@transaction.atomic
def add_to_collection(*, volunteer: Volunteer, token: str, detectid) -> bool:
    """Add a candidate; returns False where it was in already."""
    coll = _owned(volunteer=volunteer, token=token, lock=True)
    cand = _candidate(detectid)
    if CollectionItem.objects.filter(collection=coll, candidate=cand).exists():
        return False
    if CollectionItem.objects.filter(collection=coll).count() >= MAX_ITEMS:
        raise InvalidInput(
            gettext("%(name)r holds %(n)d candidates, the most a collection can: start another one")
            % {"name": coll.name, "n": MAX_ITEMS}
        )
    CollectionItem.objects.create(collection=coll, candidate=cand)
    coll.save(update_fields=["updated_at"])
    return True


@transaction.atomic
def remove_from_collection(*, volunteer: Volunteer, token: str, detectid) -> bool:
    coll = _owned(volunteer=volunteer, token=token, lock=True)
    cand = _candidate(detectid)
    removed, _ = CollectionItem.objects.filter(collection=coll, candidate=cand).delete()
    if removed:
        coll.save(update_fields=["updated_at"])
    return bool(removed)


def collection_items(*, collection: Collection, limit: int = PAGE_ITEMS) -> list[Candidate]:
    rows = (
        CollectionItem.objects.filter(collection=collection)
        .select_related("candidate")
        .order_by("-added_at")[:limit]
    )
    return [r.candidate for r in rows]


def list_collections(*, volunteer: Volunteer) -> list[Collection]:
    from django.db.models import Count

    return list(
        Collection.objects.filter(owner=volunteer)
        .annotate(n_items=Count("items"))
        .order_by("-updated_at")
    )
