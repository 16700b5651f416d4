"""Favourites and collections (issue 28): the service's rules and limits, the pages, CSRF
on every write, private collections hidden, names and descriptions escaped."""

from __future__ import annotations

import pytest
from django.test import Client

from labelapp.errors import InvalidInput, NotFound, UnknownCandidate
from labelapp.models import Collection, CollectionItem, Favourite, Volunteer
from labelapp.services.crowd import collections as coll
from tests.factories_console import make_account
from tests.factories_volunteers import make_candidates, make_volunteer

pytestmark = pytest.mark.django_db

XSS_NAME = '<script>alert("n")</script>'
XSS_DESC = '"><img src=x onerror=alert(1)>\n<script>alert(2)</script>'


def _login(client, username="mira"):
    user = make_account(username)
    client.force_login(user)
    return user


def _me(user) -> Volunteer:
    return Volunteer.objects.get_or_create(user=user)[0]


# --- service ----------------------------------------------------------------------------


def test_favourite_is_idempotent_and_toggles():
    cands = make_candidates(2)
    v = make_volunteer()
    assert coll.set_favourite(volunteer=v, detectid=cands[0].detectid, favourite=True)
    assert coll.set_favourite(volunteer=v, detectid=cands[0].detectid, favourite=True)
    assert Favourite.objects.filter(volunteer=v).count() == 1
    assert coll.favourite_detectids(volunteer=v) == {cands[0].detectid}
    assert not coll.set_favourite(volunteer=v, detectid=cands[0].detectid, favourite=False)
    assert not Favourite.objects.exists()
    with pytest.raises(UnknownCandidate, match="no candidate with detectid 42"):
        coll.set_favourite(volunteer=v, detectid=42, favourite=True)
    with pytest.raises(InvalidInput, match="whole number"):
        coll.set_favourite(volunteer=v, detectid="abc", favourite=True)


def test_collection_rules_and_limits(monkeypatch):
    cands = make_candidates(3)
    v, other = make_volunteer(), make_volunteer()
    c = coll.create_collection(volunteer=v, name="  Blobs  ", description="nice\nones")
    assert c.name == "Blobs" and not c.public and len(c.token) == 16
    with pytest.raises(InvalidInput, match="already have a collection called 'Blobs'"):
        coll.create_collection(volunteer=v, name="Blobs")
    with pytest.raises(InvalidInput, match="name is empty"):
        coll.create_collection(volunteer=v, name="   ")
    with pytest.raises(InvalidInput, match="81 characters long: 80 at most"):
        coll.create_collection(volunteer=v, name="x" * 81)
    with pytest.raises(InvalidInput, match="1001 characters long: 1000 at most"):
        coll.create_collection(volunteer=v, name="long", description="y" * 1001)
    with pytest.raises(InvalidInput, match="control characters"):
        coll.create_collection(volunteer=v, name="bad\u202ename")
    assert coll.add_to_collection(volunteer=v, token=c.token, detectid=cands[0].detectid)
    assert not coll.add_to_collection(volunteer=v, token=c.token, detectid=cands[0].detectid)
    with pytest.raises(NotFound):  # someone else's collection cannot be changed
        coll.add_to_collection(volunteer=other, token=c.token, detectid=cands[1].detectid)
    with pytest.raises(NotFound):
        coll.delete_collection(volunteer=other, token=c.token)
    monkeypatch.setattr(coll, "MAX_ITEMS", 2)
    coll.add_to_collection(volunteer=v, token=c.token, detectid=cands[1].detectid)
    with pytest.raises(InvalidInput, match="holds 2 candidates"):
        coll.add_to_collection(volunteer=v, token=c.token, detectid=cands[2].detectid)
    assert coll.remove_from_collection(volunteer=v, token=c.token, detectid=cands[0].detectid)
    assert CollectionItem.objects.filter(collection=c).count() == 1
    monkeypatch.setattr(coll, "MAX_COLLECTIONS", 2)
    coll.create_collection(volunteer=v, name="Second")
    with pytest.raises(InvalidInput, match="you have 2 collections"):
        coll.create_collection(volunteer=v, name="Third")
    coll.create_collection(volunteer=other, name="Blobs")  # names are per owner
    monkeypatch.setattr(coll, "MAX_FAVOURITES", 1)
    coll.set_favourite(volunteer=v, detectid=cands[0].detectid, favourite=True)
    with pytest.raises(InvalidInput, match="1 favourites"):
        coll.set_favourite(volunteer=v, detectid=cands[1].detectid, favourite=True)


def test_private_collection_is_not_found_for_others():
    v, other = make_volunteer(), make_volunteer()
    c = coll.create_collection(volunteer=v, name="Mine")
    assert coll.get_collection(token=c.token, viewer=v) == c
    for viewer in (other, None):
        with pytest.raises(NotFound):
            coll.get_collection(token=c.token, viewer=viewer)
    coll.update_collection(volunteer=v, token=c.token, public=True)
    assert coll.get_collection(token=c.token, viewer=None) == c


# --- pages ------------------------------------------------------------------------------


def test_pages_need_an_account_to_save(client):
    cands = make_candidates(1)
    assert client.get("/collections/")["Location"].startswith("/accounts/login/")
    resp = client.post(
        "/favourites/", {"detectid": cands[0].detectid}, HTTP_ACCEPT="application/json"
    )
    assert resp.status_code == 403 and "Sign up" in resp.json()["error"]["message"]
    assert client.post("/collections/new/", {"name": "x"}).status_code == 302
    assert not Collection.objects.exists() and not Favourite.objects.exists()


def test_create_share_and_hide_a_collection(client):
    cands = make_candidates(3)
    user = _login(client)
    resp = client.post(
        "/collections/new/", {"name": "Round ones", "description": "three", "public": "on"}
    )
    c = Collection.objects.get()
    assert resp["Location"] == f"/collections/{c.token}/" and c.public
    for cand in cands[:2]:
        client.post(f"/collections/{c.token}/items/", {"detectid": cand.detectid})
    assert c.items.count() == 2
    page = client.get(f"/collections/{c.token}/").content.decode()
    assert f"/candidates/{cands[0].detectid}/cutout.png" in page and "Round ones" in page
    assert f"http://testserver/collections/{c.token}/" in page  # the share link
    # anyone can read a public collection, with its thumbnails, and change nothing
    stranger = Client()
    html = stranger.get(f"/collections/{c.token}/").content.decode()
    assert f"/candidates/{cands[1].detectid}/cutout.png" in html and "by mira" in html
    assert "Delete this collection" not in html and 'name="detectid"' not in html
    other = Client()
    _login(other, "otto")
    resp = other.post(f"/collections/{c.token}/items/", {"detectid": cands[2].detectid})
    assert resp.status_code == 404 and c.items.count() == 2
    assert other.post(f"/collections/{c.token}/delete/").status_code == 404
    # private: a 404 for everyone but the owner
    client.post(f"/collections/{c.token}/edit/", {"name": "Round ones", "visibility": "1"})
    c.refresh_from_db()
    assert not c.public
    assert stranger.get(f"/collections/{c.token}/").status_code == 404
    assert other.get(f"/collections/{c.token}/").status_code == 404
    assert client.get(f"/collections/{c.token}/").status_code == 200
    client.post(
        f"/collections/{c.token}/items/",
        {"detectid": cands[0].detectid, "action": "remove"},
    )
    assert list(c.items.values_list("candidate_id", flat=True)) == [cands[1].pk]
    client.post(f"/collections/{c.token}/delete/")
    assert not Collection.objects.filter(owner=_me(user)).exists()


def test_favourites_from_the_personal_page_and_the_classify_button(client):
    cands = make_candidates(2)
    user = _login(client)
    resp = client.post(
        "/favourites/",
        {"detectid": cands[0].detectid, "favourite": "1"},
        HTTP_ACCEPT="application/json",
    )
    assert resp.json() == {"detectid": cands[0].detectid, "favourite": True}
    resp = client.post(
        "/favourites/", {"detectid": cands[1].detectid, "favourite": "1", "next": "/me/"}
    )
    assert resp["Location"] == "/me/"
    assert coll.favourite_detectids(volunteer=_me(user)) == {c.detectid for c in cands}
    client.post("/favourites/", {"detectid": cands[1].detectid, "favourite": "0"})
    html = client.get("/collections/").content.decode()
    assert f"/candidates/{cands[0].detectid}/cutout.png" in html
    assert f"/candidates/{cands[1].detectid}/cutout.png" not in html
    resp = client.post(
        "/favourites/", {"detectid": "999", "favourite": "1"}, HTTP_ACCEPT="application/json"
    )
    assert resp.status_code == 404
    # an off-site next is refused
    resp = client.post(
        "/favourites/", {"detectid": cands[0].detectid, "next": "https://evil.example/"}
    )
    assert resp["Location"] == "/collections/"


def test_every_write_needs_the_csrf_token():
    cands = make_candidates(1)
    client = Client(enforce_csrf_checks=True)
    user = _login(client)
    c = coll.create_collection(volunteer=_me(user), name="Kept")
    writes = [
        ("/favourites/", {"detectid": cands[0].detectid}),
        ("/collections/new/", {"name": "New"}),
        (f"/collections/{c.token}/edit/", {"name": "Renamed"}),
        (f"/collections/{c.token}/items/", {"detectid": cands[0].detectid}),
        ("/collections/add/", {"token": c.token, "detectid": cands[0].detectid}),
        (f"/collections/{c.token}/delete/", {}),
    ]
    for url, data in writes:
        assert client.post(url, data).status_code == 403, url
    c.refresh_from_db()
    assert c.name == "Kept" and not c.items.exists() and Collection.objects.count() == 1
    assert not Favourite.objects.exists()


@pytest.mark.parametrize("payload", [XSS_NAME, '"><img src=x onerror=alert(1)>'])
def test_names_and_descriptions_are_escaped_everywhere(client, payload):
    cands = make_candidates(1)
    user = _login(client)
    client.post("/collections/new/", {"name": payload, "description": XSS_DESC, "public": "on"})
    c = Collection.objects.get(owner=_me(user))
    assert c.name == payload  # stored as typed
    client.post(f"/collections/{c.token}/items/", {"detectid": cands[0].detectid})
    pages = [
        client.get(f"/collections/{c.token}/").content.decode(),  # owner's view, edit form
        Client().get(f"/collections/{c.token}/").content.decode(),  # public view
        client.get("/collections/").content.decode(),  # the list, the add-to menus
    ]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "onerror=alert(1)>" not in html.replace("&gt;", "")  # no live attribute
        assert "&lt;script&gt;" in html or "&quot;&gt;&lt;img" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in pages[1]  # the description too


def test_thumbnails_are_listed_for_anonymous_readers_of_a_public_collection(client):
    cands = make_candidates(4)
    user = _login(client)
    c = coll.create_collection(volunteer=_me(user), name="Four", public=True)
    for cand in cands:
        coll.add_to_collection(volunteer=_me(user), token=c.token, detectid=cand.detectid)
    html = Client().get(f"/collections/{c.token}/").content.decode()
    assert html.count('width="500" height="318"') == 4
    assert "4 candidates" in html


def test_admin_lists_collections_for_moderation(admin_client):
    v = make_volunteer()
    coll.create_collection(volunteer=v, name=XSS_NAME, description=XSS_DESC, public=True)
    html = admin_client.get("/admin/labelapp/collection/").content.decode()
    assert "&lt;script&gt;alert" in html and "<script>alert" not in html
