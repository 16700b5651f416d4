"""Console: a scientist's tokens for the science API (create, see, revoke). Thin: the rules
live in ``labelapp.services.science.tokens``. The secret of a new token is shown once, on
the page the creation redirects to, and is never stored."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from labelapp.errors import PlatformError
from labelapp.services.science import tokens
from labelapp.views.console.access import scientist_required

SESSION_KEY = "science_token_secret"


@scientist_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    status, error, form = 200, "", {"name": "", "scopes": list(tokens.SCOPES)}
    if request.method == "POST":
        form = {"name": request.POST.get("name", ""), "scopes": request.POST.getlist("scopes")}
        try:
            new = tokens.create_token(user=request.user, name=form["name"], scopes=form["scopes"])
        except PlatformError as exc:
            status, error = 400, exc.message
        else:
            request.session[SESSION_KEY] = {"id": new.token.pk, "secret": new.secret}
            return redirect("console-tokens")
    shown = request.session.pop(SESSION_KEY, None)  # once: a reload no longer shows it
    return render(
        request,
        "console/tokens.html",
        {
            "tokens": tokens.tokens_of(request.user),
            "scopes": tokens.SCOPES.items(),
            "form": form,
            "error": error,
            "new_secret": shown,
            "api_base": request.build_absolute_uri(reverse("science-api:api-root")),
        },
        status=status,
    )


@scientist_required
@require_POST
def token_revoke(request, pk: int):
    try:
        changed = tokens.revoke_token(user=request.user, token_id=pk)
    except PlatformError as exc:
        messages.error(request, exc.message)
    else:
        if changed:
            messages.success(request, f"Token {pk} revoked: it no longer works.")
        else:
            messages.info(request, f"Token {pk} was already revoked.")
    return redirect("console-tokens")
