from django.contrib import admin

from labelapp.models import Candidate, IngestBatch, WorkerHeartbeat


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
