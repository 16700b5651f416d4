"""Console: Talk for the science team. Open flags (grouped by candidate), the most used
hashtags, the best discussed candidates, and the actions on a candidate: make it a gold
standard, send it to the expert queue, or close its flags (services.community.talk, audited).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labelapp.errors import NotFound, PlatformError
from labelapp.models import Report
from labelapp.selectors import talk as reads
from labelapp.services.community import talk
from labelapp.views.console.access import scientist_required
from mlcore.survey import TRUTH_TYPES


@scientist_required
@require_GET
def talk_console(request):
    discussed = reads.well_discussed()
    tags = reads.tags_by_candidate([t.candidate_id for t in discussed])
    return render(
        request,
        "console/talk.html",
        {
            "flags": reads.open_flags_by_candidate(),
            "hashtags": reads.top_hashtags(limit=50),
            "discussed": [(t, tags.get(t.candidate_id, [])) for t in discussed],
            "n_reports": Report.objects.filter(resolved_at__isnull=True).count(),
            "kinds": TRUTH_TYPES,
        },
    )


@scientist_required
@require_POST
def talk_candidate_action(request, detectid: int):
    """POST action=gold (is_real, kind, feedback?), expert, or close."""
    action = request.POST.get("action", "")
    try:
        result = talk.act_on_flags(
            user=request.user,
            detectid=detectid,
            action=action,
            is_real=request.POST.get("is_real"),
            kind=request.POST.get("kind", ""),
            feedback=request.POST.get("feedback", ""),
        )
    except NotFound as exc:
        raise Http404(exc.message) from None
    except PlatformError as exc:
        return render(
            request,
            "console/talk_refused.html",
            {"detectid": detectid, "message": exc.message, "kinds": TRUTH_TYPES},
            status=400,
        )
    done = {
        "gold": f"Candidate {detectid} is now a gold standard",
        "expert": f"Candidate {detectid} sent to the expert queue"
        if result.changed
        else f"Candidate {detectid} already waits in the expert queue",
        "close": f"Flags on candidate {detectid} closed",
    }[result.action]
    messages.success(request, f"{done} ({result.flags_resolved} open flag(s) resolved).")
    return redirect("console-talk")
