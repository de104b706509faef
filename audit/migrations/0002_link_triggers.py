"""Install the audit triggers of the many-to-many link tables (PostgreSQL only).

Django creates those tables itself, so the migration autodetector never sees their
triggers: they are installed here from the registered definitions. After changing one,
`manage.py pgtrigger install` brings the database up to date.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def _link_triggers() -> list[tuple[Any, Any]]:
    import pgtrigger

    from audit.models import LINK_EVENT_MODELS

    tracked = {event_model.pgh_tracked_model for event_model in LINK_EVENT_MODELS}  # type: ignore[attr-defined]
    return [(model, trigger) for model, trigger in pgtrigger.registered() if model in tracked]


def install(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, trigger in _link_triggers():
        trigger.install(model, database=schema_editor.connection.alias)


def uninstall(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, trigger in _link_triggers():
        trigger.uninstall(model, database=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_event_tables")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
