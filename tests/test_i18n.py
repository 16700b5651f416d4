"""The volunteer pages in the volunteer's language (locale/, docs/volunteers.md "Languages").

Guards: every string marked in the source is translated, non-fuzzy, in every shipped locale
and both domains (django: templates and Python; djangojs: the volunteer scripts), with the
same placeholders; the committed .mo files are what the .po files compile to; and the pages
rendered with the language cookie set show the translation, not the English.
"""

import ast
import gettext as gnu_gettext
import json
import re
import shutil
import subprocess

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import translation

from labelapp.models import Candidate
from labelapp.services.survey.ingest import ingest_survey
from mlcore.survey_io import write_survey
from tests.factories import make_survey

LOCALE_DIR = django_settings.BASE_DIR / "locale"
SHIPPED = [code for code, _ in django_settings.LANGUAGES if code != "en"]
DOMAINS = ["django", "djangojs"]
# What makemessages reads (the Makefile's `messages` target ignores everything else).
SOURCES = ["templates", "labelapp", "static/js"]
PLACEHOLDER = re.compile(r"%\([A-Za-z_]\w*\)[sdr]|%[sdr]|%%|\{[A-Za-z_]\w*\}")


def parse_po(text: str) -> dict:
    """{(msgctxt, msgid): entry} of a .po or .pot file; entry has plural, msgstr (list) and
    fuzzy. Obsolete (#~) entries and the header are left out."""
    entries = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        e = {"ctxt": None, "id": None, "plural": None, "str": {}, "fuzzy": False}
        key = None
        for line in block.splitlines():
            if line.startswith("#~"):
                e["id"] = None
                break
            if line.startswith("#,"):
                e["fuzzy"] |= "fuzzy" in line
                continue
            if line.startswith("#"):
                continue
            m = re.match(r"(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")$", line)
            if m:
                kw, idx, val = m.groups()
                key = (kw, int(idx or 0))
                value = ast.literal_eval(val)
                if kw.startswith("msgstr"):
                    e["str"][key[1]] = value
                else:
                    e[{"msgctxt": "ctxt", "msgid": "id", "msgid_plural": "plural"}[kw]] = value
            elif line.startswith('"') and key is not None:
                value = ast.literal_eval(line)
                if key[0].startswith("msgstr"):
                    e["str"][key[1]] += value
                else:
                    e[{"msgctxt": "ctxt", "msgid": "id", "msgid_plural": "plural"}[key[0]]] += value
        if e["id"]:  # "" is the header
            e["msgstr"] = [e["str"][i] for i in sorted(e["str"])]
            entries[(e["ctxt"], e["id"])] = e
    return entries


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def problems(source: dict, shipped: dict, where: str) -> list[str]:
    """What is wrong with the ``shipped`` catalogue against the strings in the ``source``."""
    out = []
    for key, src in source.items():
        label = f"{where}: {key[1][:60]!r}" + (f" (context {key[0]!r})" if key[0] else "")
        e = shipped.get(key)
        if e is None:
            out.append(f"{label}: missing (run `make messages` and translate it)")
            continue
        if e["fuzzy"]:
            out.append(f"{label}: fuzzy")
        if not e["msgstr"] or not all(s.strip() for s in e["msgstr"]):
            out.append(f"{label}: not translated")
            continue
        ids = [src["id"]] + ([src["plural"]] if src["plural"] else [])
        for s in e["msgstr"]:
            # a plural form may leave out the count ("one comment"), never add another
            if not any(placeholders(s) == placeholders(i) for i in ids) and not (
                src["plural"] and set(placeholders(s)) <= set(placeholders(src["plural"]))
            ):
                out.append(f"{label}: placeholders {placeholders(s)} != {placeholders(ids[0])}")
            if '"' in s and not any('"' in i for i in ids):
                # translations land in HTML attributes unescaped: typographic quotes only
                out.append(f'{label}: a straight double quote (") the English does not have')
    return out


@pytest.fixture(scope="module")
def source_catalogues(tmp_path_factory):
    """The strings marked in the source now: makemessages run on a copy of the sources (so
    the repository's catalogues are not touched), its .pot kept and read."""
    if not (shutil.which("xgettext") and shutil.which("msgmerge")):
        pytest.fail("GNU gettext (xgettext) is needed: apt-get install gettext")
    root = tmp_path_factory.mktemp("i18n-src")
    for src in SOURCES:
        shutil.copytree(
            django_settings.BASE_DIR / src,
            root / src,
            ignore=shutil.ignore_patterns("__pycache__", "migrations", "*.pyc"),
        )
    (root / "locale").mkdir()
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(django_settings, "LOCALE_PATHS", [root / "locale"])
        for domain in DOMAINS:
            call_command(
                "makemessages",
                locale=["es"],
                domain=domain,
                keep_pot=True,
                no_obsolete=True,
                verbosity=0,
            )
            out[domain] = parse_po((root / "locale" / f"{domain}.pot").read_text())
    return out


def test_the_source_has_strings_in_both_domains(source_catalogues):
    # the extraction itself works: a test that finds nothing would pass whatever happens
    assert ("navigation landmark", "main") in source_catalogues["django"]
    assert (None, "Is there a real emission line in the middle?") in source_catalogues["django"]
    assert (None, "Noted: %(reason)s.") in source_catalogues["djangojs"]
    assert len(source_catalogues["django"]) > 300 and len(source_catalogues["djangojs"]) > 20


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("lang", SHIPPED)
def test_every_string_is_translated_in_every_shipped_locale(source_catalogues, lang, domain):
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    assert po.exists(), f"{po} is missing: run `make messages`"
    found = problems(source_catalogues[domain], parse_po(po.read_text()), f"{lang}/{domain}")
    assert not found, f"{len(found)} problem(s):\n" + "\n".join(found[:40])


def test_the_completeness_check_catches_what_it_should():
    source = {
        (None, "Hello %(name)s"): {"id": "Hello %(name)s", "plural": None},
        (None, "New"): {"id": "New", "plural": None},
        (None, "Quoted"): {"id": "Quoted", "plural": None},
        (None, "Fuzzy"): {"id": "Fuzzy", "plural": None},
    }
    shipped = parse_po(
        'msgid "Hello %(name)s"\nmsgstr "Hola %(nombre)s"\n\n'
        'msgid "Quoted"\nmsgstr "Mit \\"Zitat\\""\n\n'
        '#, fuzzy\nmsgid "Fuzzy"\nmsgstr "Borroso"\n'
    )
    found = "\n".join(problems(source, shipped, "xx"))
    assert "'New': missing" in found
    assert "placeholders ['%(nombre)s'] != ['%(name)s']" in found
    assert "straight double quote" in found
    assert "'Fuzzy': fuzzy" in found


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("lang", SHIPPED)
def test_committed_mo_files_are_compiled_from_the_po_files(tmp_path, lang, domain):
    """The site reads the .mo files (no gettext needed to install it); they must say what the
    .po files say: compiled again here and compared message by message."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.fail("GNU gettext (msgfmt) is needed: apt-get install gettext")
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"{mo} is missing: run `make messages`"
    fresh = tmp_path / "fresh.mo"
    subprocess.run([msgfmt, "--check", "-o", str(fresh), str(po)], check=True)
    with open(mo, "rb") as committed, open(fresh, "rb") as compiled:
        assert gnu_gettext.GNUTranslations(committed)._catalog == (
            gnu_gettext.GNUTranslations(compiled)._catalog
        ), f"{mo} is out of date: run `make messages` (it compiles the .po files)"


# --- the pages ------------------------------------------------------------------------------

# (page, {lang: translated text that must show}, English that must not)
PAGES = [
    ("/", {"es": "Empezar a clasificar", "de": "Jetzt klassifizieren"}, "Start classifying"),
    (
        "/classify/?skip=1",
        {
            "es": "¿Hay una línea de emisión real en el centro?",
            "de": "Ist in der Mitte eine echte Emissionslinie?",
        },
        "Is there a real emission line",
    ),
    ("/classify/?skip=1", {"es": "Rayo cósmico", "de": "Kosmischer Strahl"}, "Cosmic ray"),
    ("/tutorial/", {"es": "Cómo reconocer una línea real", "de": "So erkennst du"}, "How to spot"),
    ("/tutorial/", {"es": "Saltar el tutorial", "de": "Tutorial überspringen"}, "Skip the tut"),
    ("/field-guide/", {"es": "Guía de campo", "de": "Feldführer"}, "Back to classifying"),
    ("/field-guide/", {"es": "un rayo cósmico", "de": "ein kosmischer Strahl"}, "is a cosmic ray"),
    ("/me/", {"es": "Tu nivel", "de": "Deine Stufe"}, "Your level"),
    ("/me/", {"es": "Nivel 1: candidatos claros", "de": "Stufe 1: klare"}, "Level 1: clear"),
    ("/results/", {"es": "Lo que hemos hecho", "de": "gemeinsam geschafft"}, "done together"),
    ("/privacy/", {"es": "Qué guardamos", "de": "Was wir speichern"}, "What we keep"),
    ("/talk/", {"es": "Etiquetas populares", "de": "Beliebte Hashtags"}, "Popular hashtags"),
]


@pytest.fixture
def candidates(db, tmp_path):
    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(12)))
    return Candidate.objects.order_by("detectid")


@pytest.mark.django_db
@pytest.mark.parametrize("lang", SHIPPED)
def test_volunteer_pages_speak_the_chosen_language(client, candidates, lang):
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = lang
    seen = {}
    for path, translated, english in PAGES:
        if path not in seen:
            resp = client.get(path)
            assert resp.status_code == 200, path
            seen[path] = resp.content.decode()
        html = seen[path]
        assert translated[lang] in html, f"{path} in {lang}: {translated[lang]!r} not shown"
        assert english not in html, f"{path} in {lang}: still says {english!r}"
    for path, html in seen.items():
        assert f'<html lang="{lang}">' in html, path
        assert f'<option value="{lang}" lang="{lang}" selected>' in html, path  # the switcher


@pytest.mark.django_db
def test_english_stays_the_default(client, candidates):
    html = client.get("/classify/?skip=1").content.decode()
    assert '<html lang="en">' in html and "Is there a real emission line" in html
    # the browser's language is honoured when no choice was made
    html = client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").content.decode()
    assert "Jetzt klassifizieren" in html


@pytest.mark.django_db
def test_the_switcher_sets_the_language_and_goes_back(client):
    resp = client.post("/i18n/setlang/", {"language": "es", "next": "/field-guide/"})
    assert resp.status_code == 302 and resp["Location"] == "/field-guide/"
    assert resp.cookies[django_settings.LANGUAGE_COOKIE_NAME].value == "es"
    assert "Guía de campo" in client.get("/privacy/").content.decode()
    # an unknown language is ignored; an outside "next" is not followed
    resp = client.post("/i18n/setlang/", {"language": "xx", "next": "https://evil.example/"})
    assert resp["Location"] == "/"
    assert client.cookies[django_settings.LANGUAGE_COOKIE_NAME].value == "es"


@pytest.mark.django_db
@pytest.mark.parametrize("lang,text", [("es", "¡Correcto!"), ("de", "Richtig!")])
def test_the_scripts_catalogue_is_served_in_the_language(client, lang, text):
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = lang
    resp = client.get("/i18n/js/")
    assert resp.status_code == 200 and "javascript" in resp["Content-Type"]
    body = resp.content.decode()
    assert json.dumps(text) in body and "Noted:" in body  # the msgid, with its translation
    assert "/i18n/js/" in client.get("/classify/?skip=1").content.decode()  # loaded first


def test_default_gold_feedback_is_told_in_the_language_and_own_text_as_written():
    from labelapp.services.crowd.gold import FEEDBACK
    from labelapp.services.crowd.votes import _told_feedback

    with translation.override("de"):
        assert _told_feedback("cosmic", FEEDBACK["cosmic"]).startswith("Dieser helle Punkt")
        assert _told_feedback("cosmic", "A scientist's own words.") == "A scientist's own words."
    with translation.override("en"):
        assert _told_feedback("cosmic", FEEDBACK["cosmic"]) == FEEDBACK["cosmic"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "lang,text", [("es", "no se te mostró"), ("de", "wurde dir nicht gezeigt"), ("en", "not shown")]
)
def test_the_vote_apis_refusals_are_told_in_the_language(client, candidates, lang, text):
    """What the classify page prints from the vote API (a refused vote, nothing to undo)."""
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = lang
    client.get("/api/next/")
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value}
    body = {"detectid": candidates[0].detectid, "token": "forged", "answer": "no"}
    resp = client.post("/api/votes/", body, content_type="application/json", headers=headers)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "not_served"
    assert text in resp.json()["error"]["message"]
    resp = client.post("/api/votes/undo/", content_type="application/json", headers=headers)
    undo = {"es": "todavía no has", "de": "noch nichts", "en": "not answered anything"}[lang]
    assert resp.status_code == 404 and undo in resp.json()["error"]["message"]


@pytest.mark.django_db
def test_the_candidate_page_names_the_regime_in_the_language(client, candidates):
    c = candidates.first()
    word = {"low": ("bajo", "niedrig"), "high": ("alto", "hoch")}[c.regime]
    for lang, expect in zip(("es", "de"), word, strict=True):
        client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = lang
        html = client.get(f"/candidates/{c.detectid}/").content.decode()
        assert expect in html and f"({c.regime} regime)" not in html
