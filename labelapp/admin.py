from django import forms
from django.contrib import admin
from django.http import HttpResponse

from labelapp.middleware import refused_login_response
from labelapp.models import Candidate, Collection, IngestBatch, NewsItem, WorkerHeartbeat
from labelapp.services.operations import login_guard


@admin.register(IngestBatch)
class IngestBatchAdmin(admin.ModelAdmin):
    list_display = ("name", "n_candidates", "file_format", "store_dtype", "created_at")
    readonly_fields = [f.name for f in IngestBatch._meta.fields]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ("detectid", "field", "wave", "sn", "flux", "linewidth", "batch")
    list_filter = ("field",)
    search_fields = ("=detectid",)
    show_full_result_count = False  # no COUNT(*) over millions of rows per page view
    raw_id_fields = ("batch",)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "seen_at")


# --- Volunteers ---------------------------------------------------------------------------
from labelapp.models import GoldStandard, HoldoutLabel, Volunteer, Vote  # noqa: E402
from labelapp.services.crowd import gold  # noqa: E402


class GoldStandardForm(forms.ModelForm):
    class Meta:
        model = GoldStandard
        fields = "__all__"  # the admin shows every field

    def clean(self):
        """Gold that has taught cannot become exam gold (services.crowd.gold says why)."""
        data = super().clean()
        candidate = data.get("candidate")
        was_exam = self.instance.pk is not None and (
            GoldStandard.objects.filter(pk=self.instance.pk).values_list("exam", flat=True).first()
        )
        if data.get("exam") and candidate is not None and not was_exam:
            if gold.has_taught(candidate.pk):
                self.add_error(
                    "exam",
                    "This gold has taught (its answer was told with a vote): it cannot become "
                    "exam gold. Mark a candidate no volunteer has answered as gold.",
                )
        return data


@admin.register(GoldStandard)
class GoldStandardAdmin(admin.ModelAdmin):
    """Where scientists mark gold-standard candidates and write the feedback volunteers see."""

    form = GoldStandardForm
    list_display = ("candidate", "is_real", "kind", "exam", "active", "created_by", "created_at")
    list_filter = ("is_real", "kind", "exam", "active")
    raw_id_fields = ("candidate", "created_by")

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(HoldoutLabel)
class HoldoutLabelAdmin(admin.ModelAdmin):
    """The held-out expert sample (the promotion gate's set); bulk loads: manage.py holdout."""

    list_display = ("candidate", "is_real", "source", "created_by", "created_at")
    list_filter = ("is_real", "source")
    raw_id_fields = ("candidate", "created_by")


@admin.register(Volunteer)
class VolunteerAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "user",
        "n_votes",
        "n_gold",
        "n_gold_correct",
        "n_exam",
        "n_exam_correct",
        "streak_days",
        "created_at",
    )
    raw_id_fields = ("user",)
    show_full_result_count = False


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = (
        "volunteer",
        "candidate",
        "answer",
        "reason",
        "was_gold",
        "client",
        "created_at",
    )
    list_filter = ("answer", "reason", "was_gold", "client")
    raw_id_fields = ("volunteer", "candidate")
    show_full_result_count = False  # millions of votes: no COUNT(*) per page


# --- Models, rounds, labels: read-only ---------------------------------------------------
# Their state changes only through services (the promotion gate, rounds, aggregation runs),
# each of which records what it did; an edit here would bypass that, so the admin shows them.
from labelapp.models import (  # noqa: E402
    AggregationRun,
    ConsensusState,
    Label,
    ModelVersion,
    PretrainedEncoder,
    Round,
    RoundCandidate,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("pk", "status", "label_source", "n_train", "created_at", "status_reason")
    list_filter = ("status", "label_source")


@admin.register(PretrainedEncoder)
class PretrainedEncoderAdmin(ReadOnlyAdmin):
    list_display = ("pk", "approach", "n_candidates", "created_at", "retired_at", "directory")
    list_filter = ("approach",)


@admin.register(Round)
class RoundAdmin(ReadOnlyAdmin):
    list_display = (
        "number", "status", "scored_by", "n_queued", "votes_gained", "labels_gained",
        "trained_model", "started_at", "closed_at",
    )  # fmt: skip
    list_filter = ("status",)


@admin.register(RoundCandidate)
class RoundCandidateAdmin(ReadOnlyAdmin):
    list_display = ("round", "rank", "candidate", "reason", "score")
    list_filter = ("reason",)
    raw_id_fields = ("round", "candidate")
    search_fields = ("=candidate__detectid",)


@admin.register(AggregationRun)
class AggregationRunAdmin(ReadOnlyAdmin):
    list_display = ("pk", "method", "status", "n_votes", "n_candidates", "n_retired")
    list_filter = ("method", "status")


@admin.register(Label)
class LabelAdmin(ReadOnlyAdmin):
    list_display = ("candidate", "run", "is_real", "posterior", "confidence", "n_votes")
    list_filter = ("is_real",)
    raw_id_fields = ("run", "candidate")
    search_fields = ("=candidate__detectid",)


@admin.register(ConsensusState)
class ConsensusStateAdmin(ReadOnlyAdmin):
    list_display = ("candidate", "posterior", "n_votes", "n_unsure", "expert_label", "updated_at")
    raw_id_fields = ("candidate",)
    search_fields = ("=candidate__detectid",)


# --- The admin's log-in goes through the one log-in limiter (services.login_guard) -------
_admin_login = admin.site.login


def _limited_admin_login(request, extra_context=None) -> HttpResponse:
    """AdminSite.login behind the same per-username limit and lock-out as /accounts/login/
    (the backend refuses a locked account as well; per address: AuthRateLimitMiddleware)."""
    if request.method == "POST":
        refusal = login_guard.login_refusal(username=request.POST.get("username", ""))
        if refusal is not None:
            return refused_login_response(request, refusal.message, refusal.retry_after_s)
    return _admin_login(request, extra_context)


admin.site.login = _limited_admin_login


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    """Moderation: a collection's name and description are volunteers' own words."""

    list_display = ("name", "owner", "public", "updated_at")
    list_filter = ("public",)
    search_fields = ("name", "description")
    raw_id_fields = ("owner",)
    readonly_fields = ("token",)
    show_full_result_count = False


# --- Talk ---------------------------------------------------------------------------------
from labelapp.models import Board, Comment, Suspension  # noqa: E402


@admin.register(Board)
class BoardAdmin(admin.ModelAdmin):
    """Talk's boards: add, rename or reorder them here (the four defaults are made on first use)."""

    list_display = ("name", "slug", "position", "description")
    prepopulated_fields = {"slug": ("name",)}


class _ReadOnly(admin.ModelAdmin):
    """Written only by services.community.talk (hiding and suspending are audited there, at
    /talk/ and /talk/moderation/); listed here to search."""

    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Comment)
class CommentAdmin(_ReadOnly):
    list_display = ("pk", "author", "thread", "science_team", "created_at", "hidden_at")
    list_filter = ("science_team",)
    search_fields = ("body", "author__username")


@admin.register(Suspension)
class SuspensionAdmin(_ReadOnly):
    list_display = ("user", "reason", "until", "created_by", "created_at", "lifted_at")
    search_fields = ("user__username", "reason")


@admin.register(NewsItem)
class NewsItemAdmin(admin.ModelAdmin):
    list_display = ("title", "published_at", "published", "created_by")
    list_filter = ("published",)
