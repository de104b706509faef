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
from .delivery import Channel, DeliveryAttempt, DigestRun, Notification, Policy
from .silences import Silence

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
