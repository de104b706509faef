"""`python manage.py tradewatch <verb>`: Tradewatch from the command line.

The verbs live in their apps (`alerts.cli`, `health.cli`, `metrics.cli`,
`monitoring_site.demo`); this dispatcher gathers them all, so it lives with the project.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from alerts.cli import backtest, control, export, status, tail
from configuration import cli as config
from health.cli import health
from metrics.cli import history, schedules, sources
from metrics.models import Source
from metrics.services import source_create, source_key_issue, source_keys_revoke
from monitoring_site import digest_command as digest
from monitoring_site.demo import command as demo


class Verb(Protocol):
    """A verb's module: its help, its arguments, and `run` returning the exit code.

    (`SUMMARY` and `EPILOG` are the module's constants, hence read-only properties here.)
    """

    @property
    def SUMMARY(self) -> str: ...

    @property
    def EPILOG(self) -> str: ...

    def add_arguments(self, parser: CommandParser) -> None: ...

    def run(self, options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int: ...


VERBS: dict[str, Verb] = {
    "tail": tail,
    "status": status,
    "metrics": history,
    "export": export,
    "health": health,
    "demo": demo,
    "config": config,
    "schedule": schedules,
    "halt": control.halt,
    "reduce": control.reduce,
    "rearm": control.rearm,
    "backtest": backtest,
    "digest": digest,
}


class Command(BaseCommand):
    help = (
        "Tradewatch from the command line: `tradewatch source add|key|revoke-keys|list`, "
        "`tradewatch tail`, `tradewatch status`, `tradewatch health`, "
        "`tradewatch metrics SOURCE NAME`, `tradewatch export --from TIME`, "
        "`tradewatch demo`, `tradewatch config export|apply|schema`, "
        "`tradewatch schedule list|show|add|exchanges`, "
        "`tradewatch halt|reduce|rearm SOURCE|--tag T|--all --note ...`, "
        "`tradewatch backtest RULE --source S --since 7d`, "
        "`tradewatch digest --policy P --preview`."
    )
    # The verb's exit code (e.g. `status` exits 2 when something critical is firing).
    exit_code = 0

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True)
        source = verbs.add_parser("source", help="create sources and manage their API keys")
        actions = source.add_subparsers(dest="action", required=True)

        add = actions.add_parser("add", help="create a source and print its first API key once")
        add.add_argument("name")
        add.add_argument("--kind", default=Source.Kind.BOT, choices=Source.Kind.values)
        add.add_argument("--tag", action="append", default=[], dest="tags", help="repeatable")
        add.add_argument("--description", default="")
        add.add_argument(
            "--heartbeat-period", type=sources.heartbeat_period, default=None, metavar="SECONDS",
            help="how often the source sends a heartbeat, at least 1 (default 60)",
        )  # fmt: skip
        add.add_argument(
            "--heartbeat-grace", type=sources.heartbeat_grace, default=None, metavar="SECONDS",
            help="how late a heartbeat may be before the source counts as silent (default 60)",
        )  # fmt: skip
        add.add_argument(
            "--schedule", default=None, metavar="NAME",
            help="when it is expected to run (a schedule's name; default always)",
        )  # fmt: skip

        key = actions.add_parser("key", help="issue another API key for a source, printed once")
        key.add_argument("name")

        revoke = actions.add_parser("revoke-keys", help="revoke every API key of a source")
        revoke.add_argument("name")

        actions.add_parser("list", help="list sources")

        for name, verb in VERBS.items():
            description = verb.SUMMARY[:1].upper() + verb.SUMMARY[1:] + "."
            verb.add_arguments(
                verbs.add_parser(
                    name, help=verb.SUMMARY, description=description, epilog=verb.EPILOG
                )
            )

    def run_from_argv(self, argv: list[str]) -> None:
        super().run_from_argv(argv)
        if self.exit_code:
            sys.exit(self.exit_code)

    def handle(self, *args: Any, **options: Any) -> None:
        self.exit_code = 0
        if options["verb"] == "source":
            getattr(self, f"source_{options['action'].replace('-', '_')}")(options)
        else:
            self.exit_code = VERBS[options["verb"]].run(options, self.stdout, self.stderr)

    def source_add(self, options: dict[str, Any]) -> None:
        try:
            source, key = source_create(
                name=options["name"],
                kind=options["kind"],
                tags=options["tags"],
                description=options["description"],
                heartbeat_period=options["heartbeat_period"],
                heartbeat_grace=options["heartbeat_grace"],
                schedule=options["schedule"],
            )
        except ValidationError as exc:
            raise CommandError(_describe(exc)) from None
        self.stdout.write(f"Created source {source.name} ({source.kind}, id {source.pk}).")
        self._print_key(key)

    def source_key(self, options: dict[str, Any]) -> None:
        self._print_key(source_key_issue(source=self._source(options["name"])))

    def source_revoke_keys(self, options: dict[str, Any]) -> None:
        revoked = source_keys_revoke(source=self._source(options["name"]))
        self.stdout.write(f"Revoked {revoked} key(s) of {options['name']}.")

    def source_list(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        for line in sources.format_sources(sources.sources_listed(now=now), now):
            self.stdout.write(line)

    def _source(self, name: str) -> Source:
        try:
            return Source.objects.get(name=name)
        except Source.DoesNotExist:
            raise CommandError(f"No source named {name!r}.") from None

    def _print_key(self, key: str) -> None:
        self.stdout.write(f"API key (shown only now, store it safely): {key}")


def _describe(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(str(m) for m in messages)}"
            for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)
