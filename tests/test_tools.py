"""The course-maintenance tools: student versions and the course runner's notebook discovery."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strip_solutions_keeps_indentation_and_checks():
    student = load("make_student_versions")
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\nassert check('a', f)"
    assert student.strip_solutions(src) == "def f(x):\n    raise NotImplementedError(\"your code here\")\n\nassert check('a', f)"
    for bad in ("### BEGIN SOLUTION\nx", "x\n### END SOLUTION", "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"):
        with pytest.raises(ValueError):
            student.strip_solutions(bad)


def test_student_versions_of_every_notebook(tmp_path):
    student = load("make_student_versions")
    assert student.main(["--out", str(tmp_path)]) == 0
    written = sorted(tmp_path.glob("*.ipynb"))
    assert [p.name for p in written] == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))
    for path in written:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs for c in code)
        assert not any("### BEGIN SOLUTION" in c.source for c in code)
        assert sum("NotImplementedError" in c.source for c in code) >= 3  # at least three exercises


def test_every_notebook_follows_the_template():
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert sum("parameters" in t for t in tags) == 1, f"{path.name}: exactly one parameters cell"
        for needed in ("Open In Colab", "Learning objectives", "## Exercises", "## Summary", "google.colab", "**Time:**"):
            assert needed in text, f"{path.name} lacks {needed!r}"
        assert text.count("### BEGIN SOLUTION") >= 3, f"{path.name}: at least three exercises"
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        assert all(c.execution_count is not None for c in code), f"{path.name} is stored without outputs"
        assert not any(o.get("output_type") == "error" for c in code for o in c.outputs), f"{path.name} stores an error"
