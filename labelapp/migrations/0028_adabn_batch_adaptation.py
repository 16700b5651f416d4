# AdaBN on the platform (issue 25): the campaign setting, the per-batch record of how a model
# version scores a shifted batch, and on each score the statistics it was made with.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('labelapp', '0027_encoder_retire_and_campaign_start'),
    ]

    operations = [
        migrations.AddField(
            model_name='campaignsettings',
            name='adapt_shifted_batches',
            field=models.BooleanField(default=True, help_text="Score a batch its newest shift report calls shifted or far with the live model's BatchNorm statistics re-estimated on that batch (AdaBN); labelapp.services.learning.adaptation."),
        ),
        migrations.CreateModel(
            name='BatchAdaptation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('adapted', models.BooleanField(help_text='False: scored as trained, see reason')),
                ('reason', models.TextField()),
                ('verdict', models.CharField(blank=True, max_length=16)),
                ('n_used', models.PositiveIntegerField(default=0, help_text='candidates whose cutouts gave the statistics')),
                ('n_batch', models.PositiveIntegerField(default=0, help_text='candidates with cutouts')),
                ('seed', models.IntegerField(default=0)),
                ('bn_state', models.JSONField(blank=True, default=dict, help_text='The re-estimated BatchNorm buffers, by name.')),
                ('requested_by', models.CharField(blank=True, help_text='blank: a scoring run', max_length=150)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('batch', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='adaptations', to='labelapp.ingestbatch')),
                ('model_version', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='batch_adaptations', to='labelapp.modelversion')),
                ('shift_report', models.ForeignKey(blank=True, help_text='The report whose verdict asked for it.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='labelapp.shiftreport')),
            ],
            options={
                'ordering': ['batch_id'],
            },
        ),
        migrations.AddField(
            model_name='candidatescore',
            name='adaptation',
            field=models.ForeignKey(blank=True, help_text='The batch statistics (AdaBN) this score was made with; null: none.', null=True, on_delete=django.db.models.deletion.RESTRICT, related_name='scores', to='labelapp.batchadaptation'),
        ),
        migrations.AddConstraint(
            model_name='batchadaptation',
            constraint=models.UniqueConstraint(fields=('model_version', 'batch'), name='adaptation_unique_model_batch'),
        ),
    ]
