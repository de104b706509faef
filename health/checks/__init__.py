"""The kinds of health check, one module each, found by kind through `check_class`."""

from __future__ import annotations

from .activity import ActivityProbe
from .base import CheckResult, Probe, Target
from .broker import BrokerProbe
from .heartbeat import HeartbeatProbe
from .host import HostProbe
from .http import HttpProbe
from .postgres import PostgresProbe
from .staleness import StalenessProbe
from .tcp import TcpProbe

PROBES: dict[str, type[Probe]] = {
    probe.kind: probe
    for probe in (
        HeartbeatProbe, ActivityProbe, HttpProbe, TcpProbe, PostgresProbe, BrokerProbe,
        HostProbe, StalenessProbe,
    )
}  # fmt: skip


def check_class(kind: str) -> type[Probe]:
    """The probe class of `kind` (KeyError for an unknown kind)."""
    return PROBES[kind]


__all__ = ["PROBES", "CheckResult", "Probe", "Target", "check_class"]
