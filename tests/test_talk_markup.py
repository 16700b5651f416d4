"""Talk's markup (labelapp.services.community.markup): the small markdown subset, and that
nothing a volunteer types comes out as markup the renderer did not write itself."""

from __future__ import annotations

import re

import pytest

from labelapp.services.community import markup

KNOWN = {2100744791, 42}


def _render(text: str) -> str:
    return markup.render(
        text,
        tag_url=lambda t: f"/talk/tags/{t}/",
        candidate_url=lambda d: f"/talk/candidates/{d}/" if d in KNOWN else None,
    )


def test_the_subset():
    assert _render("**bold** and *it* and `x*y*`") == (
        "<p><strong>bold</strong> and <em>it</em> and <code>x*y*</code></p>"
    )
    assert _render("**bold *nested* here**") == "<p><strong>bold <em>nested</em> here</strong></p>"
    assert _render("one\ntwo\n\n\nthree") == "<p>one<br>two</p><p>three</p>"
    assert _render("   ") == ""
    assert _render("2 * 3 * 4 stays") == "<p>2 * 3 * 4 stays</p>"


def test_hashtags_and_candidates_become_links_only_where_they_should():
    html = _render("#Sky-residual near detectid:42 and 2100744791, not 2100744792 or #1 or a#b")
    assert '<a class="hashtag" href="/talk/tags/sky-residual/">#Sky-residual</a>' in html
    assert '<a class="candidate-link" href="/talk/candidates/42/">detectid:42</a>' in html
    assert '<a class="candidate-link" href="/talk/candidates/2100744791/">2100744791</a>' in html
    assert "2100744792" in html and "/2100744792/" not in html  # no such candidate: text
    assert html.count("<a ") == 3
    assert "<a" not in _render("`#code 2100744791`")  # nothing inside code


def test_extract_counts_each_tag_once_lower_case_and_skips_code():
    m = markup.extract("#Sky #sky #meteor `#notme` detectid 42 2100744791 123")
    assert m.hashtags == {"sky", "meteor"}
    assert m.detectids == {42, 2100744791}


XSS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "![x](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "**<b onmouseover=alert(1)>x</b>**",
    "`</code><script>alert(1)</script>`",
    '#tag"><script>alert(1)</script>',
    "*<svg/onload=alert(1)>*",
    "&lt;script&gt; &#60;script&#62;",
    "javascript:alert(1) data:text/html,<script>alert(1)</script>",
    'detectid:42"onclick=alert(1)',
]


@pytest.mark.parametrize("payload", XSS)
def test_no_typed_markup_survives(payload):
    html = _render(payload)
    tags = re.findall(r"<\s*([a-zA-Z/][^\s>]*)([^>]*)>", html)
    assert {t.strip("/").lower() for t, _ in tags} <= {"p", "br", "strong", "em", "code", "a"}
    for tag, attrs in tags:
        if tag == "a":  # only the renderer's own links, to this site's pages
            assert re.fullmatch(r' class="(hashtag|candidate-link)" href="/talk/[^"<>]*"', attrs)
        else:
            assert attrs == "", (tag, attrs)
    assert "javascript:" not in " ".join(a for _, a in tags)
    assert "<script" not in html and "onerror=" not in " ".join(a for _, a in tags)


def test_long_and_pathological_input_stays_fast():
    import time

    t0 = time.perf_counter()
    _render("*" * 5000)
    _render("**a" * 1600)
    _render("`" * 5000)
    _render("#a" * 2500)
    _render("1234567 " * 600)
    assert time.perf_counter() - t0 < 2.0
