# Pretrained encoders (issue #25): a table of their own, never a ModelVersion.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labelapp", "0024_shift_report_nights"),
    ]

    operations = [
        migrations.CreateModel(
            name="PretrainedEncoder",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("approach", models.CharField(help_text="contrastive | masked", max_length=16)),
                (
                    "directory",
                    models.TextField(help_text="Directory with model.pt and model_card.json."),
                ),
                ("card", models.JSONField(default=dict)),
                ("n_candidates", models.PositiveIntegerField(default=0)),
                ("data_hash", models.CharField(blank=True, max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["-pk"],
            },
        ),
    ]
