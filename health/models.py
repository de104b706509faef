"""Health of Tradewatch's own processes and (later) of what it watches."""

from __future__ import annotations

from django.db import models


class ProcessHeartbeat(models.Model):
    """The last sign of life of one of Tradewatch's own processes (beat, workers)."""

    class Role(models.TextChoices):
        BEAT = "beat", "Beat"
        WORKER = "worker", "Worker"

    role = models.CharField(max_length=20, choices=Role.choices)
    name = models.CharField(max_length=200, help_text="Host and process that reported.")
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["role", "name"], name="process_heartbeat_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.name}"
