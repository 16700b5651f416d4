"""The science pages of the console: N(z) with its spikes, and external validation."""

from __future__ import annotations

from django import forms
from django.shortcuts import render

from labelapp.selectors.external_scores import external_score_comparisons
from labelapp.services.operations.audit import record_audit
from labelapp.services.science import redshift as nz_service
from labelapp.services.science.external_validation import (
    MAX_DWAVE,
    RADIUS_ARCSEC,
    ExternalUploadError,
    max_upload_bytes,
    read_upload,
    validate_against_external,
)
from labelapp.views.console.access import scientist_required


class RedshiftForm(forms.Form):
    cut = forms.FloatField(
        label="CNN cut", min_value=0.0, max_value=1.0, required=False,
        help_text="keep candidates with live-model P(real) at or above this",
    )  # fmt: skip
    width = forms.FloatField(
        label="bin width (Å)", required=False,
        min_value=nz_service.MIN_BIN_WIDTH, max_value=nz_service.MAX_BIN_WIDTH,
    )  # fmt: skip


@scientist_required
def redshift(request):
    defaults = {"cut": nz_service.DEFAULT_CUT, "width": nz_service.DEFAULT_BIN_WIDTH}
    form = RedshiftForm(request.GET or None, initial=defaults)
    cut, width, status = defaults["cut"], defaults["width"], 200
    if form.is_bound:
        if form.is_valid():
            if form.cleaned_data["cut"] is not None:
                cut = form.cleaned_data["cut"]
            width = form.cleaned_data["width"] or width
        else:
            status = 400  # the page still shows, with the defaults and the form's errors
    report = nz_service.redshift_report(cut=cut, bin_width=width)
    by_key = {s["key"]: s for s in report["selections"]}
    return render(
        request,
        "console/redshift.html",
        {
            "form": form,
            "report": report,
            "high": by_key["high"],
            "before": by_key["all"],
            "after": by_key["cnn"],
            "rows": [by_key["high"], by_key["all"], by_key["cnn"]],
        },
        status=status,
    )


class ExternalUploadForm(forms.Form):
    catalogue = forms.FileField(
        label="catalogue file",
        help_text="FITS table or CSV with columns ra, dec (degrees), z [, quality]",
    )
    cut = forms.FloatField(label="CNN cut", min_value=0.0, max_value=1.0, initial=0.5)


@scientist_required
def external(request):
    context = {
        "max_bytes": max_upload_bytes(),
        "radius_arcsec": RADIUS_ARCSEC,
        "max_dwave": MAX_DWAVE,
        # kept external scores (HETDEX PDR1's p_cnn) against our labels and live model
        "comparisons": external_score_comparisons(),
    }
    if request.method != "POST":
        context["form"] = ExternalUploadForm()
        return render(request, "console/external.html", context)

    form = ExternalUploadForm(request.POST, request.FILES)
    upload = request.FILES.get("catalogue")
    filename = upload.name if upload is not None else ""
    report, problems, status = None, [], 200
    if form.is_valid():
        try:
            catalogue = read_upload(form.cleaned_data["catalogue"])
            report = validate_against_external(catalogue, cut=form.cleaned_data["cut"])
        except ExternalUploadError as exc:
            problems, status = exc.problems, 400
    else:
        status = 400
    detail: dict = {"ok": report is not None}
    if report is not None:
        detail.update(
            n_external=report["n_external"],
            n_matched=report["n_matched"],
            cut=report["cut"],
            model=report["model"]["id"] if report["model"] else None,
            regimes={r["key"]: [r["n_matched"], r["n_recovered"]] for r in report["regimes"]},
        )
    else:
        detail["problems"] = problems[:5] or [f"{k}: {v[0]}" for k, v in form.errors.items()]
    record_audit(
        user=request.user, action="external_validation", target=filename[:120], detail=detail
    )
    context.update(form=form, report=report, problems=problems, filename=filename)
    return render(request, "console/external.html", context, status=status)
