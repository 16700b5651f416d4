"""The acquisition settings scientists save in the console for the next rounds, whether
shifted batches are scored with batch statistics (AdaBN: :mod:`.adaptation`), and whether
shift reports are built without a person (:mod:`.auto_shift`).

Kept apart from :mod:`labelapp.services.learning.steering` (which sends Celery tasks) so that
rounds, which the tasks run, can read them without importing the task module.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from django.db import transaction

from labelapp.errors import InvalidInput
from labelapp.models import CampaignSettings
from labelapp.selectors.campaign import campaign_flag
from labelapp.services.operations.audit import record_audit
from mlcore.acquisition import AcquisitionConfig

# What the console form may change; the rest of AcquisitionConfig keeps its defaults.
EDITABLE = (
    "strategy",
    "batch_size",
    "random_fraction",
    "low_sn_weight",
    "diversity",
    "wave_bin_A",
    "max_bin_fraction",
    "power",
    "carry_fraction",
    "shift_fraction",
    "seed",
)


class SettingsError(InvalidInput):
    pass


def acquisition_settings() -> AcquisitionConfig:
    """The settings the next round uses: the console's saved values over the defaults."""
    row = CampaignSettings.objects.filter(pk=1).first()
    saved = row.acquisition if row else {}
    known = {f.name for f in fields(AcquisitionConfig)}
    return AcquisitionConfig(**{k: v for k, v in saved.items() if k in known})


def set_acquisition_settings(*, user, values: dict) -> AcquisitionConfig:
    """Validate (AcquisitionConfig checks every value) and save; audited."""
    unknown = sorted(set(values) - set(EDITABLE))
    if unknown:
        raise SettingsError(f"not an editable acquisition setting: {', '.join(unknown)}")
    current = asdict(acquisition_settings())
    merged = {k: current[k] for k in EDITABLE} | values
    try:
        config = AcquisitionConfig(**merged)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    before = {k: current[k] for k in EDITABLE}
    with transaction.atomic():
        CampaignSettings.objects.update_or_create(
            pk=1, defaults={"acquisition": merged, "updated_by": user.get_username()}
        )
        changed = {k: [before[k], merged[k]] for k in EDITABLE if before[k] != merged[k]}
        record_audit(user=user, action="acquisition_settings", target="campaign", detail=changed)
    return config


def adapt_setting() -> bool:
    """Whether a batch its shift report flags is scored with batch statistics (AdaBN,
    :mod:`labelapp.services.learning.adaptation`); on unless turned off."""
    return campaign_flag("adapt_shifted_batches")


def set_adapt_setting(*, user, on: bool) -> bool:
    """Turn it on or off; audited (``scoring_settings``). It applies to scoring runs planned
    from then on (and to ``shift_report --rescore``); scores already made keep theirs."""
    return _set_flag("adapt_shifted_batches", user=user, on=on, action="scoring_settings")


def auto_shift_setting() -> bool:
    """Whether shift reports are built by themselves: of every batch before a model's
    scoring run is planned, of a new batch after ingest (:mod:`.auto_shift`); on unless
    turned off."""
    return campaign_flag("auto_shift_reports")


def set_auto_shift_setting(*, user, on: bool) -> bool:
    """Turn it on or off; audited (``shift_settings``). Reports already built stay."""
    return _set_flag("auto_shift_reports", user=user, on=on, action="shift_settings")


def self_training_setting() -> bool:
    """Whether retrains self-train on the unlabelled catalogue (``train_model_version``'s
    default; :mod:`mlcore.cnn.self_training`); off unless turned on."""
    return campaign_flag("self_training")


def set_self_training_setting(*, user, on: bool) -> bool:
    """Turn it on or off; audited (``self_training_settings``). Models already trained keep
    their cards (each says whether it self-trained)."""
    return _set_flag("self_training", user=user, on=on, action="self_training_settings")


def _set_flag(name: str, *, user, on: bool, action: str) -> bool:
    """Save a boolean campaign setting, with an audit record of before and after."""
    on = bool(on)
    with transaction.atomic():
        before = campaign_flag(name)
        CampaignSettings.objects.update_or_create(
            pk=1, defaults={name: on, "updated_by": user.get_username()}
        )
        record_audit(user=user, action=action, target="campaign", detail={name: [before, on]})
    return on
