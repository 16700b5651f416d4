# Pretrained encoders can be retired (kept for provenance, no longer offered to retrains),
# and the campaign settings name the encoder retrains start from (null: from scratch).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labelapp", "0026_vote_volunteer_index_redundant"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaignsettings",
            name="retrain_encoder",
            field=models.ForeignKey(
                blank=True,
                help_text="The pretrained encoder retrains start from unless a request says otherwise (null: from scratch); labelapp.services.learning.encoders.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="labelapp.pretrainedencoder",
            ),
        ),
        migrations.AddField(
            model_name="pretrainedencoder",
            name="retired_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="pretrainedencoder",
            name="retired_by",
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AddField(
            model_name="pretrainedencoder",
            name="retired_reason",
            field=models.TextField(blank=True),
        ),
    ]
