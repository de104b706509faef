from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("health", "0002_checks_reports_recovery"),
    ]

    operations = [
        migrations.AddField(
            model_name="processheartbeat",
            name="queues",
            field=models.CharField(
                blank=True,
                help_text="The queues a worker consumes, comma-separated.",
                max_length=200,
            ),
        ),
        migrations.CreateModel(
            name="PeriodicRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(
                        help_text="The beat entry's name.", max_length=200, unique=True
                    ),
                ),
                ("task", models.CharField(max_length=200)),
                ("last_started_at", models.DateTimeField(blank=True, null=True)),
                ("last_finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "running_until",
                    models.DateTimeField(
                        blank=True,
                        help_text="A run holds the period until then (or until done).",
                        null=True,
                    ),
                ),
                ("runs", models.PositiveBigIntegerField(default=0)),
                (
                    "skipped",
                    models.PositiveBigIntegerField(
                        default=0,
                        help_text="Runs sent again within the same period (a second beat, a "
                        "replayed message) that found the period taken and did nothing.",
                    ),
                ),
            ],
            options={"ordering": ["name"]},
        ),
    ]
