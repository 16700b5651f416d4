"""Migration 0032 (exam gold): volunteers proven before it stay proven."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("labelapp", "0031_model_call_trust")]
AFTER = [("labelapp", "0032_exam_gold")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_proven_volunteers_proven_and_gold_teaching():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Volunteer = old.get_model("labelapp", "Volunteer")
    proven = Volunteer.objects.create(n_votes=12, n_gold=6, n_gold_correct=5)
    newcomer = Volunteer.objects.create(n_votes=2)
    executor = MigrationExecutor(connection)  # a fresh loader sees the graph as it is now
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    Volunteer = new.get_model("labelapp", "Volunteer")
    assert Volunteer.objects.values_list("n_exam", "n_exam_correct").get(pk=proven.pk) == (6, 5)
    assert Volunteer.objects.values_list("n_exam", "n_exam_correct").get(pk=newcomer.pk) == (0, 0)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("labelapp"))  # back to the latest
