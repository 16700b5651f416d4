"""Migrations 0032 (exam gold) and 0033 (probation): volunteers proven before them stay
proven."""

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


@pytest.mark.django_db(transaction=True)
def test_migration_0033_keeps_volunteers_proven_by_exam_gold_through_probation():
    before, after = [("labelapp", "0032_exam_gold")], [("labelapp", "0033_probation_passed")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    Volunteer = executor.loader.project_state(before).apps.get_model("labelapp", "Volunteer")
    proven = Volunteer.objects.create(n_exam=6, n_exam_correct=5)
    failing = Volunteer.objects.create(n_exam=6, n_exam_correct=3)
    newcomer = Volunteer.objects.create(n_exam=2, n_exam_correct=2)
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    Volunteer = executor.loader.project_state(after).apps.get_model("labelapp", "Volunteer")
    passed = dict(Volunteer.objects.values_list("pk", "probation_passed"))
    assert (passed[proven.pk], passed[failing.pk], passed[newcomer.pk]) == (True, False, False)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("labelapp"))
