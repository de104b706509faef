"""The alerts app's models: what fires (alerting), what is muted (silences) and where it
goes (delivery)."""

from .alerting import (
    Alert,
    AlertTransition,
    Rule,
    RulePackInstall,
    RuleSourceState,
    Severity,
    Threshold,
    ThresholdOverride,
)
from .delivery import Channel, DeliveryAttempt, Notification, Policy
from .silences import Silence

__all__ = [
    "Alert",
    "AlertTransition",
    "Channel",
    "DeliveryAttempt",
    "Notification",
    "Policy",
    "Rule",
    "RulePackInstall",
    "RuleSourceState",
    "Severity",
    "Silence",
    "Threshold",
    "ThresholdOverride",
]
