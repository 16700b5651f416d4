"""Volunteers: skills with uncertainty, activity, suspected spammers."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labelapp.selectors import volunteers as sel
from labelapp.services.crowd import moderation
from labelapp.views.console.access import scientist_required


@scientist_required
@require_GET
def volunteers(request):
    rows = sel.skill_rows()
    return render(
        request,
        "console/volunteers.html",
        {
            "skill_fig": sel.skill_figure(rows),
            "activity_fig": sel.activity_histogram(),
            "spammers": sel.suspected_spammers(),
            "top": rows[:25],
            "spam_min_votes": sel.SPAM_MIN_VOTES,
        },
    )


# --- suspicious volunteers, voiding votes, blocked addresses (issue #24) -----------------


@scientist_required
@require_GET
def suspicious(request):
    from labelapp.selectors.suspicious import suspicious_volunteers

    return render(
        request,
        "console/suspicious.html",
        {
            "suspects": suspicious_volunteers(),
            "blocked": [str(n) for n in moderation.blocked_ranges(fresh=True)],
        },
    )


@scientist_required
@require_POST
def void_votes(request, pk: int):
    try:
        result = moderation.void_volunteer_votes(
            volunteer_id=pk, user=request.user, reason=request.POST.get("reason", "")
        )
    except moderation.ModerationError as exc:
        messages.error(request, f"Nothing voided: {exc}.")
    else:
        messages.success(
            request,
            f"Voided {result.n_votes} votes of volunteer #{pk} on {result.n_candidates} "
            f"candidates; {len(result.reopened)} retired candidates were re-opened.",
        )
    return redirect("console-suspicious")


@scientist_required
@require_POST
def block_range(request):
    action = request.POST.get("action", "block")
    try:
        if action == "unblock":
            net = moderation.unblock_address_range(
                cidr=request.POST.get("cidr", ""), user=request.user
            )
            messages.success(request, f"Unblocked {net}.")
        else:
            net = moderation.block_address_range(
                cidr=request.POST.get("cidr", ""),
                user=request.user,
                note=request.POST.get("note", ""),
            )
            messages.success(request, f"Blocked {net}: its votes are refused from now on.")
    except moderation.ModerationError as exc:
        messages.error(request, f"Not changed: {exc}.")
    return redirect("console-suspicious")
