"""Console actions: start a round, retrain, score, edit the acquisition settings, where
retrains start and how shifted batches are scored.

Each one is a POST (CSRF-checked) that calls a service in labelapp.services.learning.steering,
which writes the audit event and hands the long work to Celery; the page then shows the
task's progress row."""

from dataclasses import asdict

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from labelapp.selectors.models import encoder_table, live_model
from labelapp.services.learning import acquisition_settings as acq_settings
from labelapp.services.learning import encoders, steering
from labelapp.views.console.access import scientist_required
from mlcore.acquisition import DIVERSITY, STRATEGIES


@scientist_required
@require_POST
def start_round(request):
    try:
        steering.request_round(user=request.user)
    except steering.SteeringError as exc:
        messages.error(request, f"No round started: {exc}.")
    else:
        messages.success(request, "A new round was queued; its progress shows below.")
    return redirect("console-campaign")


@scientist_required
@require_POST
def trigger_retrain(request):
    try:
        epochs = int(request.POST.get("epochs", "12"))
        steering.request_retrain(
            user=request.user,
            label_source=request.POST.get("label_source", "consensus"),
            epochs=epochs,
            fine_tune=request.POST.get("fine_tune") == "1",
            # "campaign" (the form's default): the campaign setting; "": no encoder
            encoder_id=request.POST.get("encoder", encoders.CAMPAIGN) or None,
        )
    except ValueError:
        messages.error(request, "Epochs must be a whole number.")
    except steering.SteeringError as exc:
        messages.error(request, f"Not retrained: {exc}.")
    else:
        messages.success(request, "Training was queued on the gpu queue.")
    return redirect("console-campaign")


@scientist_required
@require_POST
def trigger_pretrain(request):
    try:
        n = request.POST.get("n", "").strip()
        steering.request_pretrain(
            user=request.user,
            approach=request.POST.get("approach", "masked"),
            epochs=int(request.POST.get("epochs", "5")),
            n=int(n) if n else None,
            field=request.POST.get("field", "").strip(),
        )
    except ValueError:
        messages.error(request, "Epochs and the sample size must be whole numbers.")
    except steering.SteeringError as exc:
        messages.error(request, f"Not pretrained: {exc}.")
    else:
        messages.success(
            request, "Pretraining was queued on the gpu queue; its progress shows under Tasks."
        )
    return redirect("console-campaign")


@scientist_required
@require_POST
def trigger_scoring(request):
    try:
        steering.request_scoring(user=request.user, model_version=live_model())
    except steering.SteeringError as exc:
        messages.error(request, f"Not scored: {exc}.")
    else:
        messages.success(request, "Scoring was queued on the cpu queue.")
    return redirect("console-campaign")


class AcquisitionForm(forms.Form):
    strategy = forms.ChoiceField(choices=[(s, s) for s in STRATEGIES])
    batch_size = forms.IntegerField(min_value=1, max_value=100_000)
    random_fraction = forms.FloatField(
        min_value=0.0, max_value=1.0, help_text="Share picked at random (never 0 by accident)."
    )
    low_sn_weight = forms.FloatField(
        min_value=0.01, max_value=100.0, help_text="Score multiplier for 4.8 <= S/N <= 5.5."
    )
    diversity = forms.ChoiceField(choices=[(d, d) for d in DIVERSITY])
    wave_bin_A = forms.FloatField(min_value=1.0, max_value=500.0, label="Wavelength bin (Å)")
    max_bin_fraction = forms.FloatField(
        min_value=0.001, max_value=1.0, help_text="Cap per wavelength bin, as a share."
    )
    power = forms.FloatField(
        required=False,
        min_value=0.01,
        max_value=20.0,
        label="Sampling power",
        help_text="The batch is drawn with P ~ score^power (1 by default); blank: strict top-k.",
    )
    carry_fraction = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        label="Carry-over share",
        help_text="At most this share of a batch finishes the last round's candidates that "
        "took votes but did not settle (0 by default: start afresh each round).",
    )
    shift_fraction = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        label="Shift share",
        help_text="This share of a batch goes to the best-ranked candidates of the batches and "
        "fields whose newest shift report says the live model is out of its depth there "
        "(0 by default; see Models > Shift).",
    )
    seed = forms.IntegerField(min_value=0)


@scientist_required
@require_http_methods(["GET", "POST"])
def acquisition_settings(request):
    current = asdict(acq_settings.acquisition_settings())
    form = AcquisitionForm(request.POST or None, initial=current)
    if request.method == "POST" and form.is_valid():
        try:
            acq_settings.set_acquisition_settings(user=request.user, values=form.cleaned_data)
        except acq_settings.SettingsError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Saved: the next round uses these settings.")
            return redirect("console-campaign")
    status = 400 if request.method == "POST" else 200
    ctx = {
        "form": form,
        # the Retraining form: the encoders a retrain can start from, and the current one
        "encoders": [r for r in encoder_table() if r["offered"]],
        "campaign_encoder": encoders.campaign_encoder(),
        "adapt_shifted_batches": acq_settings.adapt_setting(),
        "auto_shift_reports": acq_settings.auto_shift_setting(),
        "self_training": acq_settings.self_training_setting(),
    }
    return render(request, "console/acquisition.html", ctx, status=status)


@scientist_required
@require_POST
def retrain_settings(request):
    """Where the campaign's retrains start: from scratch ("") or a pretrained encoder."""
    choice = request.POST.get("encoder", "")
    try:
        enc = encoders.set_campaign_encoder(user=request.user, encoder_id=choice or None)
    except encoders.EncoderError as exc:
        messages.error(request, f"Not saved: {exc}.")
        return redirect("console-acquisition")
    where = "from scratch" if enc is None else f"from pretrained encoder v{enc.pk}"
    messages.success(
        request, f"Saved: retrains start {where} unless a retrain request says otherwise."
    )
    return redirect("console-campaign")


def _flag_view(field: str, setter, *, saved_on: str, saved_off: str, doc: str):
    """A console POST view that saves one boolean campaign setting (an unticked box: off)
    through ``setter`` (audited there) and says what it now does."""

    @scientist_required
    @require_POST
    def view(request):
        on = request.POST.get(field) == "on"
        setter(user=request.user, on=on)
        messages.success(request, saved_on if on else saved_off)
        return redirect("console-campaign")

    view.__doc__ = doc
    return view


scoring_settings = _flag_view(
    "adapt_shifted_batches",
    acq_settings.set_adapt_setting,
    saved_on="Saved: scoring runs planned from now on score batches a shift report calls "
    "shifted or far with their own batch statistics.",
    saved_off="Saved: every batch is scored by the model as trained, shifted or not.",
    doc="Whether batches a shift report flags are scored with batch statistics (AdaBN).",
)
shift_settings = _flag_view(
    "auto_shift_reports",
    acq_settings.set_auto_shift_setting,
    saved_on="Saved: shift reports are built before each scoring run and after each ingest.",
    saved_off="Saved: shift reports are built only on request (Shift page, manage.py "
    "shift_report).",
    doc="Whether shift reports are built by themselves (before scoring runs, after ingest).",
)
self_training_settings = _flag_view(
    "self_training",
    acq_settings.set_self_training_setting,
    saved_on="Saved: retrains from now on fit, add the model's confident answers on unlabelled "
    "candidates, and fit again.",
    saved_off="Saved: retrains fit on the labels only.",
    doc="Whether retrains self-train on the unlabelled catalogue (mlcore.cnn.self_training).",
)
