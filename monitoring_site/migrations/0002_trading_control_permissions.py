"""Who may stop trading and who may start it again.

- Operator (and Admin): `metrics.halt`, halt or set reduce only; and sees the controls.
- Admin only: `metrics.rearm`. Re-arming is the risk owner's decision.
- Viewer: sees the controls (`metrics.view_tradingcontrol`).

Like 0001: groups only gain permissions here, so running it again changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWING = ("metrics.view_tradingcontrol", "audit.view_tradingcontrolevent")
GRANTS = {
    "Viewer": VIEWING,
    "Operator": (*VIEWING, "metrics.halt"),
    "Admin": (*VIEWING, "metrics.halt", "metrics.rearm"),
}


def grant(apps: Any, schema_editor: Any) -> None:
    control_permissions_grant(apps, schema_editor.connection.alias)


def control_permissions_grant(apps: Any, alias: str) -> None:
    """Give the groups the trading control permissions (which are made first if missing)."""
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
        ("monitoring_site", "0001_groups"),
        ("metrics", "0008_trading_control"),
        ("audit", "0005_trading_control_history"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
