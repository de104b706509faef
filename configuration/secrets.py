"""Secrets in configuration files: references to environment variables, never values.

A channel's secret is written `${SLACK_WEBHOOK_URL}` and read from the environment of
whoever applies the file (the `config apply` command, or the web process for the API).
Pure: the environment is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from .document import Document, Problem
from .schema import path_text

_REFERENCE: Final = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
CHANNEL_SECTIONS: Final = ("channels", "recovery_actions")


def reference_text(variable: str) -> str:
    """`SLACK_WEBHOOK_URL` -> "${SLACK_WEBHOOK_URL}"."""
    return "${" + variable + "}"


def reference_variable(text: str) -> str | None:
    """The variable a reference names, or None when `text` is not one."""
    found = _REFERENCE.match(text)
    return found.group(1) if found else None


def secrets_resolve(
    document: Document, environ: Mapping[str, str]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]], list[Problem]]:
    """The secrets the file gives, read from `environ`, by channel name.

    Returns (values, variables, problems): a variable that is not set, or set empty,
    is a problem naming it (and where the file refers to it).
    """
    values: dict[str, dict[str, str]] = {}
    variables: dict[str, dict[str, str]] = {}
    problems: list[Problem] = []
    for section in CHANNEL_SECTIONS:
        for index, item in enumerate(document.sections.get(section, [])):
            for key, reference in item["secrets"].items():
                variable = reference_variable(reference)
                path = path_text([section, index, "secrets", key])
                if variable is None:  # the schema refuses these; kept for direct callers
                    problems.append((path, "must be a reference such as ${NAME}"))
                    continue
                value = environ.get(variable, "")
                if not value:
                    problems.append(
                        (path, f"the environment variable {variable} is not set (or empty)")
                    )
                    continue
                values.setdefault(item["name"], {})[key] = value
                variables.setdefault(item["name"], {})[key] = variable
    return values, variables, problems
