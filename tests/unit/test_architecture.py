"""The layering rules hold: services never import each other, `shared` imports no service,
infrastructure and domain import no web framework, nothing shipped imports the test plugin.

Runs import-linter with the contracts in pyproject.toml, so `make test` (and CI) enforce them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is a dev dependency; run through `uv run`"
    result = subprocess.run(
        [lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout, result.stdout
