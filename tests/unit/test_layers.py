"""The package's layer contract, enforced by import-linter (``[tool.importlinter]`` in pyproject.toml; ``make lint``
runs it too): each folder of recbook imports only the folders below it — at the top of a file or lazily inside a
function — and the library never imports the course's helpers (recbook_course)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())", "--no-cache"]


def _lint() -> subprocess.CompletedProcess:
    return subprocess.run(LINT, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_the_layer_contract_holds():
    result = _lint()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("probe, broken", [
    ("def f():\n    from recbook.serve import app\n", "recbook.models._probe_for_test -> recbook.serve.app"),  # lazy and upward
    ("import recbook_course.record\n", "recbook.models._probe_for_test -> recbook_course.record"),  # the course's helpers
])
def test_the_contract_catches_an_upward_import(probe, broken):
    fake = REPO / "recbook" / "models" / "_probe_for_test.py"
    try:
        fake.write_text(probe)
        result = _lint()
    finally:
        fake.unlink()
    assert result.returncode != 0 and broken in result.stdout, result.stdout[-3000:]


def test_every_folder_of_the_packages_is_a_regular_package():
    """A folder without ``__init__.py`` still imports (a namespace package), so nothing else notices — but the wheel
    leaves it out and import-linter cannot see it. It happened: ``.gitignore``'s ``runs/`` kept ``recbook/runs/__init__.py``
    out of every clone."""
    missing = [str(d.relative_to(REPO)) for top in ("recbook", "recbook_course") for d in [REPO / top, *(REPO / top).rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").is_file()]
    assert missing == [], f"add an __init__.py (and check .gitignore) in {missing}"
