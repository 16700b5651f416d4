"""Gold standard: seeding from simulator truth, the admin, feedback texts."""

import pytest
from django.core.management import call_command

from labelapp.models import GoldStandard
from labelapp.services.crowd.gold import FEEDBACK, seed_gold_from_truth
from labelapp.services.survey.ingest import ingest_survey
from mlcore.survey import TRUTH_TYPES
from mlcore.survey_io import write_survey
from tests.factories import make_survey

pytestmark = pytest.mark.django_db


def test_every_truth_kind_has_teaching_feedback():
    assert set(FEEDBACK) == set(TRUTH_TYPES)
    assert "cosmic ray" in FEEDBACK["cosmic"] and "one fiber" in FEEDBACK["cosmic"]


def test_seed_gold_marks_the_clearest_of_each_kind(tmp_path, capsys):
    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(30)))
    assert seed_gold_from_truth(per_kind=3) == 6  # lae + noise in the factory survey
    golds = GoldStandard.objects.select_related("candidate", "candidate__truth")
    assert all(g.is_real == g.candidate.truth.is_real and g.feedback for g in golds)
    assert seed_gold_from_truth(per_kind=3) == 6  # idempotent: tops up only
    call_command("seed_gold", "--per-kind", "4")
    assert "8 gold-standard candidates active" in capsys.readouterr().out


def test_seed_gold_without_truth_says_so(capsys):
    call_command("seed_gold")
    assert "No simulated truth" in capsys.readouterr().out


def test_admin_lists_gold_and_votes(admin_client, tmp_path):
    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(5)))
    seed_gold_from_truth(per_kind=1)
    for url in ("/admin/labelapp/goldstandard/", "/admin/labelapp/vote/",
                "/admin/labelapp/volunteer/"):  # fmt: skip
        assert admin_client.get(url).status_code == 200
