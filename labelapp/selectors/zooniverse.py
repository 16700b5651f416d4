"""The console's Zooniverse page: the latest comparison of the skill-weighted labels with
DEE's fixed-count rule, and the recent imports with what each counted. Reads only."""

from __future__ import annotations

from labelapp.models import (
    ZooniverseComparison,
    ZooniverseImport,
    ZooniverseSubject,
    ZooniverseVolunteer,
)

RECENT_IMPORTS = 20


def zooniverse_overview() -> dict:
    comparison = ZooniverseComparison.objects.select_related("aggregation_run").first()
    imports = [_import_row(run) for run in ZooniverseImport.objects.all()[:RECENT_IMPORTS]]
    return {
        "comparison": _comparison(comparison) if comparison else None,
        "imports": imports,
        "n_imports": ZooniverseImport.objects.count(),
        "imports_since_comparison": (
            ZooniverseImport.objects.filter(created_at__gt=comparison.created_at).count()
            if comparison
            else 0
        ),
        "n_subjects": ZooniverseSubject.objects.count(),
        "n_volunteers": ZooniverseVolunteer.objects.count(),
        "n_anonymous": ZooniverseVolunteer.objects.filter(anonymous=True).count(),
    }


def _comparison(c: ZooniverseComparison) -> dict:
    needed = sorted((int(n), k) for n, k in c.votes_needed.items())
    total = sum(k for _, k in needed)
    mean = sum(n * k for n, k in needed) / total if total else None
    median, seen = None, 0
    for n, k in needed:
        seen += k
        if 2 * seen >= total:
            median = n
            break
    return {
        "obj": c,
        "run": c.aggregation_run,
        "agreement": c.agree / c.settled_both if c.settled_both else None,
        "needed_mean": mean,
        "needed_median": median,
        "needed_total": total,
        "needed": [{"votes": n, "candidates": k, "share": k / total} for n, k in needed],
        "fewer_than_fixed": sum(k for n, k in needed if n < c.fixed_votes),
    }


def _import_row(run: ZooniverseImport) -> dict:
    counts = run.counts or {}
    return {
        "run": run,
        "finished": bool(counts),
        "rows": counts.get("rows", 0),
        "votes_new": counts.get("votes_new", 0),
        "expert_votes_new": counts.get("expert_votes_new", 0),
        "already_imported": counts.get("already_imported", 0),
        "duplicates": counts.get("duplicates", 0),
        "unknown_subjects": counts.get("unknown_subjects", 0),
        "unknown_subject_rows": counts.get("unknown_subject_rows", 0),
        "skipped_other_workflow": counts.get("skipped_other_workflow", 0),
        "skipped_version": counts.get("skipped_version", 0),
        "skipped_multi_subject": counts.get("skipped_multi_subject", 0),
        "gold_rows": counts.get("gold_rows", 0),
        "volunteers_new": counts.get("volunteers_new", 0),
        "anonymous_volunteers_new": counts.get("anonymous_volunteers_new", 0),
        "retired_by_consensus": counts.get("retired_by_consensus", 0),
    }
