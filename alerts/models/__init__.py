"""The alerts app's models: what fires (alerting) and where it goes (delivery)."""

from .alerting import (
    Alert,
    AlertTransition,
    Rule,
    RulePackInstall,
    RuleSourceState,
    Severity,
    Silence,
    Threshold,
    ThresholdOverride,
)
from .delivery import Channel, DeliveryAttempt, DigestRun, Notification, Policy

__all__ = [
    "Alert",
    "AlertTransition",
    "Channel",
    "DeliveryAttempt",
    "DigestRun",
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
