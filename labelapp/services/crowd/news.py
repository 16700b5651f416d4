"""News posts by the science team (the results page shows them; the console edits them).

Bodies are plain text: the page escapes them (paragraphs, line breaks and links kept), so
what a scientist types is never HTML. Every change is in the audit log.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from labelapp.errors import InvalidInput
from labelapp.models import NewsItem
from labelapp.services.operations.audit import record_audit

TITLE_MAX = NewsItem._meta.get_field("title").max_length
BODY_MAX = NewsItem._meta.get_field("body").max_length


class NewsError(InvalidInput):
    pass


def _check(*, title: str, body: str) -> tuple[str, str]:
    title, body = (title or "").strip(), (body or "").strip()
    if not title:
        raise NewsError("a news post needs a title")
    if len(title) > TITLE_MAX:
        raise NewsError(f"the title has {len(title)} characters; at most {TITLE_MAX}")
    if not body:
        raise NewsError("a news post needs some text")
    if len(body) > BODY_MAX:
        raise NewsError(f"the text has {len(body)} characters; at most {BODY_MAX}")
    return title, body


@transaction.atomic
def save_news(
    *,
    user,
    title: str,
    body: str,
    published_at: dt.datetime,
    published: bool = True,
    item: NewsItem | None = None,
) -> NewsItem:
    """Create a post (``item`` None) or change one; recorded in the audit log."""
    title, body = _check(title=title, body=body)
    created = item is None
    if item is None:
        item = NewsItem(created_by=user if getattr(user, "is_authenticated", False) else None)
    item.title, item.body = title, body
    item.published_at, item.published = published_at, published
    item.save()
    record_audit(
        user=user,
        action="news_create" if created else "news_edit",
        target=f"news:{item.pk}",
        detail={"title": title[:120], "published": published},
    )
    return item


@transaction.atomic
def delete_news(*, user, item: NewsItem) -> None:
    """Delete a post; the audit log keeps its title."""
    record_audit(
        user=user, action="news_delete", target=f"news:{item.pk}", detail={"title": item.title}
    )
    item.delete()
