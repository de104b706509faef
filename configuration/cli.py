"""`tradewatch config export|apply|schema`: configuration as code from the command line."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import CommandError, CommandParser, OutputWrapper

from .document import DocumentInvalid
from .fields import SECTIONS
from .plan import plan_lines
from .schema import config_schema_text
from .services import config_apply, config_export, may_apply

SUMMARY: Final = "export Tradewatch's configuration as YAML, or apply a file of it"
EPILOG: Final = (
    "`config export [--output FILE] [--only rules,channels,...]` writes one YAML file "
    "(schedules, sources, channels, recovery_actions, rules, policies, health_checks, "
    "silences; "
    "secrets as ${ENV} references). `config apply FILE [--dry-run] [--prune] [--as USER]` "
    "checks the whole file, shows what changes, and applies it in one transaction. "
    "`config schema` prints the file's JSON Schema."
)


def _sections(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise ValueError(f"unknown section(s) {', '.join(unknown) or value!r}")
    return names


def add_arguments(parser: CommandParser) -> None:
    actions = parser.add_subparsers(dest="config_action", required=True)
    export = actions.add_parser("export", help="write the configuration as one YAML file")
    export.add_argument("--output", "-o", default="-", metavar="FILE", help="default: stdout")
    export.add_argument(
        "--only", type=_sections, default=list(SECTIONS), metavar="SECTIONS",
        help=f"comma-separated, among {','.join(SECTIONS)}",
    )  # fmt: skip
    apply = actions.add_parser("apply", help="check a file, show the changes, apply it")
    apply.add_argument("file", metavar="FILE", help="the YAML file (- for stdin)")
    apply.add_argument("--dry-run", action="store_true", help="show the changes, apply nothing")
    apply.add_argument(
        "--prune", action="store_true",
        help="delete what the file's sections do not have (sections it leaves out are kept)",
    )  # fmt: skip
    apply.add_argument(
        "--as", dest="as_user", default=None, metavar="USER",
        help="the Tradewatch user the history records (needs the Admin group's permissions)",
    )  # fmt: skip
    apply.add_argument("--verbose", "-v", action="store_true", help="list unchanged objects too")
    schema = actions.add_parser("schema", help="print the file's JSON Schema")
    schema.add_argument("--output", "-o", default="-", metavar="FILE", help="default: stdout")


def run(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    action = options["config_action"]
    if action == "export":
        return _write(config_export(sections=options["only"]), options["output"], out)
    if action == "schema":
        return _write(config_schema_text(), options["output"], out)
    return _apply(options, out, err)


def _write(text: str, output: str, out: OutputWrapper) -> int:
    if output == "-":
        out.write(text, ending="")
        return 0
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    return 0


def _actor(name: str | None) -> AbstractBaseUser | None:
    if name is None:
        return None
    user = get_user_model().objects.filter(username=name).first()
    if user is None:
        raise CommandError(f"No Tradewatch user named {name!r}.")
    if not may_apply(user):
        raise CommandError(
            f"{name} may not change configuration: applying a file needs the Admin group's "
            "permissions (add, change and delete of schedules, sources, expectations, "
            "channels, rules, thresholds, overrides, policies, silences and health checks)."
        )
    return user


def _apply(options: dict[str, Any], out: OutputWrapper, err: OutputWrapper) -> int:
    actor = _actor(options["as_user"])
    path = options["file"]
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        result = config_apply(
            text=text,
            environ=os.environ,
            actor=actor,
            actor_name="" if actor else f"{_login()} (command line)",
            dry_run=options["dry_run"],
            prune=options["prune"],
        )
    except DocumentInvalid as exc:
        err.write(f"{path}: not applied, nothing changed:")
        for where, message in exc.problems:
            err.write(f"  {where}: {message}")
        return 1
    for line in plan_lines(result.plan, show_unchanged=options["verbose"]):
        out.write(line)
    for note in result.notes:
        out.write(f"Note: {note}")
    if options["dry_run"]:
        out.write("Dry run: nothing was applied.")
    elif result.plan.changes_anything:
        out.write("Applied.")
    else:
        out.write("Nothing to change.")
    return 0


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"
