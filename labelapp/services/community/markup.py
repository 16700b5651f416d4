"""Talk's markup: a small markdown subset, rendered safely. Pure Python (no Django).

What a comment may use (docs/volunteers.md, "Talk"):

- ``**bold**``, ``*italic*``, ```code``` (inside backticks nothing else is interpreted);
- a blank line starts a new paragraph, a single line break is kept;
- ``#hashtag``: ``#`` then a letter, then letters, digits, ``-`` or ``_`` (2-40 characters
  in all, stored lower case), not glued to a word before it (``a#b`` is not a tag);
- a candidate: ``detectid:2100744791`` (or ``detectid 2100744791``), or a bare whole number
  of 7 digits or more (HETDEX detectids have 10). It becomes a link to the candidate's
  thread only when such a candidate exists (the caller says which do).

Nothing else is markup. There are no author-written links or images at all: ``[x](url)``,
``<a href>``, ``javascript:`` stay visible as the text that was typed. Safety does not rest
on stripping: the text is cut into pieces by the rules above and **every piece of typed
text is HTML-escaped** (``html.escape(quote=True)``) as it is written out; the only tags
emitted are ``p br strong em code a``, and an ``href`` is only ever built by the caller's
functions from a validated tag name or an integer.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_DEPTH = 4  # bold inside italic inside bold...: deeper stays literal

TAG_RE = r"(?<![\w#&/])#([A-Za-z][A-Za-z0-9_-]{1,39})(?![A-Za-z0-9_-])"
DETECTID_EXPLICIT_RE = r"\b[Dd]etectid[: ]?(\d{1,19})\b"
DETECTID_BARE_RE = r"(?<![\w.,/-])(\d{7,19})(?![\w.,]\d|\w)"
_TOKENS = re.compile(
    f"(?P<tag>{TAG_RE})|(?P<explicit>{DETECTID_EXPLICIT_RE})|(?P<bare>{DETECTID_BARE_RE})"
)
_INLINE = re.compile(
    r"(?P<code>`(?P<code_body>[^`\n]+)`)"
    r"|(?P<strong>\*\*(?P<strong_body>(?=\S)(?:[^*]|\*(?!\*))+?(?<=\S))\*\*)"
    r"|(?P<em>\*(?P<em_body>(?=[^\s*])[^*]+?(?<=[^\s*]))\*)"
)
_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")


@dataclass(frozen=True)
class Mentions:
    hashtags: frozenset[str]  # lower case, without '#'
    detectids: frozenset[int]


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _token_value(m: re.Match) -> tuple[str, str | int | None]:
    if m.group("tag") is not None:
        return "tag", m.group(2).lower()
    if m.group("explicit") is not None:
        value = int(m.group(4))
    else:
        value = int(m.group(6))
    return "candidate", value if value < 2**63 else None


def extract(text: str) -> Mentions:
    """The hashtags and candidate numbers ``text`` mentions (outside code spans)."""
    tags, ids = set(), set()
    for piece in _plain_pieces(normalise(text)):
        for m in _TOKENS.finditer(piece):
            kind, value = _token_value(m)
            if value is None:
                continue
            (tags if kind == "tag" else ids).add(value)
    return Mentions(hashtags=frozenset(tags), detectids=frozenset(ids))


def _plain_pieces(text: str):
    """The text outside code spans (where tags and candidates are looked for)."""
    pos = 0
    for m in re.finditer(r"`[^`\n]+`", text):
        yield text[pos : m.start()]
        pos = m.end()
    yield text[pos:]


def render(
    text: str,
    *,
    tag_url: Callable[[str], str],
    candidate_url: Callable[[int], str | None],
) -> str:
    """HTML for ``text``. ``tag_url(name)`` is a hashtag's page; ``candidate_url(detectid)``
    a candidate's thread, or None where there is no such candidate (the number stays text)."""
    text = normalise(text)
    if not text:
        return ""
    out = []
    for para in _PARAGRAPHS.split(text):
        lines = [_inline(line, tag_url, candidate_url, 0) for line in para.split("\n")]
        out.append("<p>" + "<br>".join(lines) + "</p>")
    return "".join(out)


def _inline(text: str, tag_url, candidate_url, depth: int) -> str:
    if depth >= MAX_DEPTH:
        return _plain(text, tag_url, candidate_url)
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(_plain(text[pos : m.start()], tag_url, candidate_url))
        if m.group("code") is not None:
            out.append(f"<code>{_esc(m.group('code_body'))}</code>")
        elif m.group("strong") is not None:
            inner = _inline(m.group("strong_body"), tag_url, candidate_url, depth + 1)
            out.append(f"<strong>{inner}</strong>")
        else:
            inner = _inline(m.group("em_body"), tag_url, candidate_url, depth + 1)
            out.append(f"<em>{inner}</em>")
        pos = m.end()
    out.append(_plain(text[pos:], tag_url, candidate_url))
    return "".join(out)


def _plain(text: str, tag_url, candidate_url) -> str:
    out, pos = [], 0
    for m in _TOKENS.finditer(text):
        kind, value = _token_value(m)
        href = None
        if kind == "tag":
            href = tag_url(value)
        elif value is not None:
            href = candidate_url(value)
        if href is None:
            continue  # stays plain text, escaped with what surrounds it
        out.append(_esc(text[pos : m.start()]))
        cls = "hashtag" if kind == "tag" else "candidate-link"
        out.append(f'<a class="{cls}" href="{_esc(href)}">{_esc(m.group(0))}</a>')
        pos = m.end()
    out.append(_esc(text[pos:]))
    return "".join(out)
