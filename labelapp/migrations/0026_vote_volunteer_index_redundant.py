import django.db.models.deletion
from django.db import migrations, models

# Vote.volunteer loses its single-column index: the unique (volunteer, candidate) and the
# (volunteer, -created_at) indexes both lead with it, and every vote's INSERT paid for a
# third copy (#24). Only the index is dropped: Django's AlterField would also drop and
# re-add the foreign key, re-checking every vote under a lock on the table.
INDEX = "labelapp_vote_volunteer_id_9b4b418a"


class Migration(migrations.Migration):
    dependencies = [
        ("labelapp", "0025_pretrained_encoder"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="vote",
                    name="volunteer",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="votes",
                        to="labelapp.volunteer",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "labelapp_vote" ("volunteer_id")',
                ),
            ],
        ),
    ]
