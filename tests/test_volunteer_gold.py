"""Gold standard: seeding from simulator truth, the admin, feedback texts."""

import pytest
from django.core.management import call_command

from labelapp.models import CandidateTruth, GoldStandard
from labelapp.selectors.regimes import regime_q
from labelapp.services.crowd.gold import FEEDBACK, clear_examples, seed_gold_from_truth
from labelapp.services.survey.ingest import ingest_survey
from labelapp.services.survey.rendering import candidate_pixels
from mlcore.render import line_column
from mlcore.simulator import simulate_survey
from mlcore.survey import TRUTH_TYPES
from mlcore.survey_io import write_survey
from mlcore.teaching import teaching_check
from tests.factories import make_survey

pytestmark = pytest.mark.django_db


def test_every_truth_kind_has_teaching_feedback():
    assert set(FEEDBACK) == set(TRUTH_TYPES)
    assert "cosmic ray" in FEEDBACK["cosmic"] and "one fiber" in FEEDBACK["cosmic"]


def test_seed_gold_marks_only_examples_that_show_their_text(tmp_path, capsys):
    """Gold teaches: each gold candidate's picture shows what its feedback says, measured
    on its cutout; the clearest come first within each S/N regime, both regimes get some,
    and the rule is idempotent. The previous rule (highest S/N, half from S/N <= 5.5)
    picked examples that contradict their text, e.g. a 'real line' at S/N 5 nobody sees."""
    survey = simulate_survey(400, seed=7)
    ingest_survey(path=write_survey(tmp_path / "s.fits", survey))
    n = seed_gold_from_truth(per_kind=4)
    golds = list(GoldStandard.objects.select_related("candidate", "candidate__truth"))
    assert n == len(golds) >= 15
    assert all(g.is_real == g.candidate.truth.is_real and g.feedback for g in golds)
    for g in golds:
        pix = candidate_pixels(g.candidate)
        check = teaching_check(
            g.kind, pix["cutouts"], line_column(pix["im_wave"], g.candidate.wave)
        )
        assert check.shows, (g.kind, g.candidate.sn, check.why)
    regimes = {g.candidate.regime for g in golds}
    assert regimes == {"low", "high"}
    # what the old rule would have taken: the highest-S/N low-regime lae/oii, whatever
    # their pictures show; most of them do not show a line
    old_pick = (
        CandidateTruth.objects.filter(kind__in=("lae", "oii"), candidate__sn__lte=5.5)
        .order_by("-candidate__sn")
        .select_related("candidate")[:4]
    )
    shown = [
        teaching_check(t.kind, (p := candidate_pixels(t.candidate))["cutouts"],
                       line_column(p["im_wave"], t.candidate.wave)).shows
        for t in old_pick
    ]  # fmt: skip
    assert sum(shown) < len(shown)
    # within a kind and regime, the clearest were chosen: none left is clearer
    for g in golds:
        rest = clear_examples(g.kind, regime_q(g.candidate.regime, "candidate__sn"))
        if rest:
            pix = candidate_pixels(g.candidate)
            mine = teaching_check(
                g.kind, pix["cutouts"], line_column(pix["im_wave"], g.candidate.wave)
            ).clarity
            assert mine >= rest[0][0], (g.kind, mine, rest[0][0])
    assert seed_gold_from_truth(per_kind=4) == n  # idempotent: tops up only
    call_command("seed_gold", "--per-kind", "4")
    assert f"{n} gold-standard candidates active" in capsys.readouterr().out


def test_contract_only_pixels_make_no_gold(tmp_path):
    """The factory survey's 'lines' sit in the summed image only (no fiber shows them):
    they contradict the text (seen in more than one fiber), so none becomes gold."""
    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(30)))
    assert seed_gold_from_truth(per_kind=3) == GoldStandard.objects.filter(kind="noise").count()
    assert not GoldStandard.objects.filter(kind="lae").exists()


def test_seed_gold_without_truth_says_so(capsys):
    call_command("seed_gold")
    assert "No simulated truth" in capsys.readouterr().out


def test_admin_lists_gold_and_votes(admin_client, tmp_path):
    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(5)))
    seed_gold_from_truth(per_kind=1)
    for url in ("/admin/labelapp/goldstandard/", "/admin/labelapp/vote/",
                "/admin/labelapp/volunteer/"):  # fmt: skip
        assert admin_client.get(url).status_code == 200
