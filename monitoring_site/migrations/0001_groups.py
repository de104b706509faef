"""The three groups people are put in: Viewer, Operator and Admin.

- Viewer: sees everything Tradewatch shows (every view permission of its apps).
- Operator: also acknowledges and resolves alerts, silences, runs health checks,
  resets their circuit breakers, and sends test notifications.
- Admin: also edits configuration: rules, thresholds, overrides, channels, policies,
  silences, sources and their keys, health checks, recovery actions, schedules.

Idempotent: groups are created when missing and only ever gain permissions here, so
running it again, or after an administrator added permissions, changes nothing.
Managing people (users, groups) stays with superusers.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWER_APPS = ("metrics", "alerts", "health", "audit", "pghistory", "django_celery_beat")
OPERATOR = (
    "alerts.change_alert",
    "alerts.add_silence",
    "alerts.change_silence",
    "alerts.send_test",
    "health.run_healthcheck",
    "health.reset_breaker",
)
ADMIN_MODELS = {
    "alerts": ("rule", "threshold", "thresholdoverride", "channel", "policy", "silence"),
    "metrics": ("source", "tag", "sourceapikey"),
    "health": ("healthcheck", "recoveryaction"),
    "django_celery_beat": (
        "periodictask", "intervalschedule", "crontabschedule", "solarschedule",
        "clockedschedule",
    ),
}  # fmt: skip


def _admin_permissions() -> list[str]:
    return [
        f"{app}.{action}_{model}"
        for app, models in ADMIN_MODELS.items()
        for model in models
        for action in ("add", "change", "delete")
    ]


def groups_grant(apps: Any, alias: str) -> None:
    """Create the groups when missing and give them their permissions (which must exist)."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def permissions(names: list[str]) -> list[Any]:
        found = []
        for name in names:
            app_label, codename = name.split(".")
            found.extend(
                Permission.objects.using(alias).filter(
                    content_type__app_label=app_label, codename=codename
                )
            )
        return found

    viewing = list(
        Permission.objects.using(alias).filter(
            content_type__app_label__in=VIEWER_APPS, codename__startswith="view_"
        )
    )
    operating = [*viewing, *permissions(list(OPERATOR))]
    administering = [*operating, *permissions(_admin_permissions())]
    for name, granted in (("Viewer", viewing), ("Operator", operating), ("Admin", administering)):
        group, _ = Group.objects.using(alias).get_or_create(name=name)
        group.permissions.add(*granted)


def create_groups(apps: Any, schema_editor: Any) -> None:
    alias = schema_editor.connection.alias
    # Permissions are normally created after the last migration; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=alias)
        app_config.models_module = None
    groups_grant(apps, alias)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("alerts", "0004_audit_triggers"),
        ("metrics", "0005_audit_triggers"),
        ("health", "0004_operator_permissions_audit_triggers"),
        ("audit", "0002_link_triggers"),
        ("pghistory", "0007_auto_20250421_0444"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
