"""Console: news posts for volunteers (shown on the public results page). Thin: the rules
live in ``labelapp.services.crowd.news``."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from labelapp.models import NewsItem
from labelapp.services.crowd import news as news_service
from labelapp.views.console.access import scientist_required


class NewsForm(forms.Form):
    title = forms.CharField(max_length=news_service.TITLE_MAX)
    body = forms.CharField(
        label="text",
        max_length=news_service.BODY_MAX,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Plain text: a blank line starts a paragraph; web addresses become links. "
        "HTML is shown as typed, never run.",
    )
    published_at = forms.DateTimeField(
        label="date (UTC)",
        help_text="e.g. 2026-12-06 14:00; shown on the results page from then on",
    )
    published = forms.BooleanField(
        label="published", required=False, initial=True, help_text="untick to keep a draft"
    )


def _save(request, form: NewsForm, item: NewsItem | None):
    try:
        return news_service.save_news(user=request.user, item=item, **form.cleaned_data)
    except news_service.NewsError as exc:
        form.add_error(None, exc.message)
        return None


@scientist_required
@require_http_methods(["GET", "POST"])
def news_list(request):
    """Every post (drafts too), and a form for a new one."""
    status = 200
    if request.method == "POST":
        form = NewsForm(request.POST)
        if form.is_valid() and _save(request, form, None):
            messages.success(request, "Posted: it shows on the results page.")
            return redirect("console-news")
        status = 400
    else:
        form = NewsForm(initial={"published_at": timezone.now().replace(microsecond=0)})
    return render(
        request,
        "console/news.html",
        {"form": form, "items": NewsItem.objects.select_related("created_by")[:100]},
        status=status,
    )


@scientist_required
@require_http_methods(["GET", "POST"])
def news_edit(request, pk: int):
    item = get_object_or_404(NewsItem, pk=pk)
    status = 200
    if request.method == "POST":
        form = NewsForm(request.POST)
        if form.is_valid() and _save(request, form, item):
            messages.success(request, "Saved.")
            return redirect("console-news")
        status = 400
    else:
        form = NewsForm(
            initial={
                "title": item.title,
                "body": item.body,
                "published_at": item.published_at,
                "published": item.published,
            }
        )
    return render(request, "console/news_edit.html", {"form": form, "item": item}, status=status)


@scientist_required
@require_POST
def news_delete(request, pk: int):
    item = get_object_or_404(NewsItem, pk=pk)
    news_service.delete_news(user=request.user, item=item)
    messages.success(request, f"Deleted “{item.title}”.")
    return redirect("console-news")
