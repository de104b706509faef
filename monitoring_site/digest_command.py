"""`tradewatch digest --policy P [--preview]`: a policy's operations digest, now."""

from __future__ import annotations

from typing import Any, Final
from zoneinfo import ZoneInfo

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from alerts.models import DigestRun, Policy

from .digest import Period, digest_build, digest_send, latest_periods
from .digest_render import html, text

SUMMARY: Final = "print a policy's operations digest (--preview), or send it now"
EPILOG: Final = (
    "The digest of the policy's most recent period (the last day ending at its digest "
    "time, or the last 7 days for --kind weekly): per source PnL, drawdown, trades, win "
    "rate, lowest health score and heartbeat lapses; incidents; delivery. --preview "
    "prints it (--html: the email's HTML) and sends nothing. Without --preview it is "
    "sent to the policy's channels now, unless that period's digest was sent already "
    "(beat sends each one once, at its time)."
)


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--policy", required=True, help="the policy's name or id")
    parser.add_argument(
        "--kind", choices=[kind.value for kind in DigestRun.Kind], default=None,
        help="daily or weekly (default: the first the policy sends, else daily)",
    )  # fmt: skip
    parser.add_argument("--preview", action="store_true", help="print it, send nothing")
    parser.add_argument("--html", action="store_true", help="with --preview: print the HTML")


def _policy(ref: str) -> Policy:
    found = Policy.objects.filter(name=ref).first()
    if found is None and ref.isascii() and ref.isdigit():
        found = Policy.objects.filter(pk=int(ref)).first()
    if found is None:
        raise CommandError(f"No policy with name or id {ref!r}.")
    return found


def _period(policy: Policy, kind: str | None) -> Period:
    if kind is None:
        kind = DigestRun.Kind.WEEKLY if policy.digest_weekly_day is not None else "daily"
        if policy.digest_daily:
            kind = DigestRun.Kind.DAILY
    weekday = policy.digest_weekly_day if policy.digest_weekly_day is not None else 0
    (period,) = latest_periods(
        daily=kind == DigestRun.Kind.DAILY,
        weekly_day=weekday if kind == DigestRun.Kind.WEEKLY else None,
        at=policy.digest_time,
        zone=ZoneInfo(policy.digest_timezone),
        now=timezone.now(),
    )
    return period


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    policy = _policy(options["policy"])
    period = _period(policy, options["kind"])
    if options["preview"]:
        digest = digest_build(policy, period)
        out.write(html(digest) if options["html"] else text(digest))
        return 0
    sent = digest_send(policy, period, now=timezone.now())
    if sent is None:
        err.write(f"The {period.kind} digest of {policy.name} to {period.end:%Y-%m-%d %H:%M} "
                  "UTC was sent already.")  # fmt: skip
        return 1
    out.write(f"Sent to {sent.notifications} channel(s) of {policy.name}.")
    return 0
