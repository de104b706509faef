"""Who sees and edits schedules and sources' expectations.

- Viewer (and Operator, Admin): sees them and their history.
- Admin: adds, changes and deletes them (configuration, like sources and rules).

Like 0001: groups only gain permissions here, so running it again changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWING = (
    "metrics.view_schedule",
    "metrics.view_expectation",
    "audit.view_scheduleevent",
    "audit.view_expectationevent",
)
EDITING = tuple(
    f"metrics.{action}_{model}"
    for model in ("schedule", "expectation")
    for action in ("add", "change", "delete")
)
GRANTS = {"Viewer": VIEWING, "Operator": VIEWING, "Admin": (*VIEWING, *EDITING)}


def grant(apps: Any, schema_editor: Any) -> None:
    schedule_permissions_grant(apps, schema_editor.connection.alias)


def schedule_permissions_grant(apps: Any, alias: str) -> None:
    """Give the groups the schedule permissions (which are made first if missing)."""
    for label in ("metrics", "audit"):
        app_config = apps.get_app_config(label)
        # A migration's app states have no models module, which create_permissions
        # needs; the project's registry (tests run this again) has one, left as it is.
        kept = getattr(app_config, "models_module", None)
        app_config.models_module = kept or True
        try:
            create_permissions(app_config, apps=apps, verbosity=0, using=alias)
        finally:
            app_config.models_module = kept
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, names in GRANTS.items():
        group, _ = Group.objects.using(alias).get_or_create(name=group_name)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(
                *Permission.objects.using(alias).filter(
                    content_type__app_label=app_label, codename=codename
                )
            )


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring_site", "0002_trading_control_permissions"),
        ("metrics", "0009_schedules_and_expectations"),
        ("audit", "0008_schedule_history"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
