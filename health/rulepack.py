"""The built-in health rule: a check's status as an alert, installed once at migrate.

Like the trading pack's rules, it is written once (recorded in `RulePackInstall`)
and then belongs to the operator: edits and deletion in the admin survive every
later migrate.
"""

from __future__ import annotations

from typing import Any

PACK = "health"
KEY = "health_status"
NAME = "Health check status"
# Status levels: 1 degraded, 2 unhealthy, 3 critical.
THRESHOLDS = ((30, ">=", 1.0), (40, ">=", 2.0), (50, ">=", 3.0))


def install_health_rule(**kwargs: Any) -> bool:
    """Install the health rule unless it was installed before; return whether it was now."""
    from django.db import transaction

    from alerts.models import Rule, RulePackInstall, Threshold

    using = kwargs.get("using", "default")
    with transaction.atomic(using=using):
        _, created = RulePackInstall.objects.using(using).get_or_create(pack=PACK, key=KEY)
        if not created or Rule.objects.using(using).filter(name=NAME).exists():
            return False
        rule = Rule.objects.using(using).create(
            name=NAME,
            description="Any health check's status after flap damping: DEGRADED is a "
            "warning, UNHEALTHY an error, CRITICAL critical; resolved when healthy again. "
            "Set `metric` to a check's name or `kind:<kind>` to narrow it.",
            kind=Rule.Kind.HEALTH,
            metric="*",
            pack=PACK,
        )
        Threshold.objects.using(using).bulk_create(
            Threshold(rule=rule, severity=severity, comparison=comparison, value=value)
            for severity, comparison, value in THRESHOLDS
        )
    return True
