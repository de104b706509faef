"""The apps stay in layers: each imports only the apps below it, `core` none of them.

The contracts are pyproject.toml's `[tool.importlinter]`; `make lint` checks them too.
Imports inside functions count: a lazy import upwards is still a cycle.
"""

from __future__ import annotations

import subprocess
import sys

from tests.processes import BASE_DIR

# `lint-imports` itself, run by this interpreter (a virtualenv's script may not be on PATH).
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def test_it_keeps_the_import_contracts() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
