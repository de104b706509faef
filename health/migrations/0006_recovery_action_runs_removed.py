"""The recovery actions and their runs are gone: channels and notifications hold them now."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("health", "0005_recovery_actions_become_channels"),
        # The audit rows of actions point at them: they go first.
        ("audit", "0003_recovery_actions_become_channels"),
    ]

    operations = [
        migrations.DeleteModel(name="RecoveryActionRun"),
        migrations.DeleteModel(name="RecoveryAction"),
    ]
