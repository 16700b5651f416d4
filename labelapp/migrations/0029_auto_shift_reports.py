# Shift reports built without a person: the campaign setting that turns them off (default on).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('labelapp', '0028_adabn_batch_adaptation'),
    ]

    operations = [
        migrations.AddField(
            model_name='campaignsettings',
            name='auto_shift_reports',
            field=models.BooleanField(default=True, help_text='Build the shift reports of every ingest batch against a model before its scoring run is planned, and of a new batch against the live model after ingest; labelapp.services.learning.auto_shift.'),
        ),
    ]
