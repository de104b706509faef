"""`tradewatch halt|reduce|rearm SOURCE|--tag T|--all --note ...`: stop or re-arm trading.

Whoever may run commands on the server may use them (they act as the server's
operator, recorded as `cli`); `--user NAME` records a person instead, and then that
person's permissions apply (`metrics.halt`, and `metrics.rearm` to loosen).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from alerts.control import Target, trading_control_by_person
from metrics.control import ControlRefused
from metrics.models import Source, Tag, TradingControl

State = TradingControl.State


@dataclass(frozen=True)
class ControlVerb:
    """One of the three verbs: the state it sets."""

    state: str
    SUMMARY: str
    EPILOG: str = (
        "The state a bot must obey is the strictest of its own, its tags' and the global "
        "one: re-arming a source leaves a tag's or a global halt in force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("source", nargs="?", help="the source's name")
        target.add_argument("--tag", help="every source with this tag")
        target.add_argument("--all", action="store_true", help="every source (global)")
        parser.add_argument("--note", required=True, help="why (shown to everyone and the bot)")
        parser.add_argument("--user", help="record this person (their permissions apply)")
        if self.state == State.REDUCE_ONLY:
            parser.add_argument(
                "--for", dest="minutes", type=float, metavar="MINUTES",
                help="back to active after this many minutes",
            )  # fmt: skip

    def run(self, options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
        target = _target(options)
        by = None
        if options.get("user"):
            try:
                by = get_user_model().objects.get(username=options["user"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {options['user']!r}.") from None
        minutes = options.get("minutes")
        expires_at = timezone.now() + timedelta(minutes=minutes) if minutes else None
        try:
            change = trading_control_by_person(
                target=target, state=self.state, by=by, note=options["note"], via="cli",
                expires_at=expires_at,
            )  # fmt: skip
        except (PermissionDenied, ControlRefused) as exc:
            raise CommandError(str(exc)) from None
        out.write(f"{target}: {change.previous_state} -> {self.state}.")
        for source in change.sources:
            line = f"  {source.source_name}: {source.after.state}"
            decided = source.after.decided_by
            if source.after.state != self.state and decided is not None:
                line += f" (held by the {decided.scope} control: {decided.reason})"
            out.write(line)
        return 0


def _target(options: dict[str, Any]) -> Target:
    if options.get("all"):
        return Target.everything()
    if options.get("tag"):
        tag = Tag.objects.filter(name=options["tag"]).first()
        if tag is None:
            raise CommandError(f"No tag named {options['tag']!r}.")
        return Target.of_tag(tag)
    source = Source.objects.filter(name=options["source"]).first()
    if source is None:
        raise CommandError(f"No source named {options['source']!r}.")
    return Target.of_source(source)


halt = ControlVerb(State.HALTED, "halt trading: the bot must not trade at all")
reduce = ControlVerb(State.REDUCE_ONLY, "reduce only: the bot may close positions, open none")
rearm = ControlVerb(State.ACTIVE, "re-arm trading (the risk owner's decision)")
