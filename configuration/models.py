"""What configuration as code keeps beside the configuration itself."""

from __future__ import annotations

from django.db import models

from alerts.models import Channel


class ChannelSecretReferences(models.Model):
    """The environment variables a channel's secrets were applied from.

    `{"webhook_url": "SLACK_WEBHOOK_URL"}`: the names only, never the values, so an
    export writes `${SLACK_WEBHOOK_URL}` back where the file had it. A secret typed in
    the admin has no reference and is left out of exports.
    """

    channel = models.OneToOneField(
        Channel, on_delete=models.CASCADE, related_name="secret_references"
    )
    references = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "channel secret references"
        verbose_name_plural = "channel secret references"

    def __str__(self) -> str:
        return f"{self.channel_id}: {', '.join(sorted(self.references))}"
