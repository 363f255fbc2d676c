"""Write student versions of the notebooks: solutions removed, outputs cleared.

    python tools/make_student_versions.py [--out student]

The student versions are committed in student/ (what the Colab badges open; a test regenerates them and fails on
any difference); the executed solutions stay in notebooks/. Run ``make student`` after editing a notebook.
Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers) is replaced by
``raise NotImplementedError("your code here")`` at the same indentation; the self-check call after
it stays, so students see ✅ once they have solved the exercise. Instructors who use nbgrader can
run ``nbgrader generate_assignment`` on the notebooks instead: the markers are the same.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")


def strip_solutions(source: str) -> str:
    """Replace every marked solution block with a NotImplementedError at the block's indentation."""
    out, inside = [], False
    for line in source.splitlines():
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError("nested ### BEGIN SOLUTION")
            inside = True
            out.append(f'{begin.group(1)}raise NotImplementedError("your code here")')
        elif END.match(line):
            if not inside:
                raise ValueError("### END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("### BEGIN SOLUTION without END")
    return "\n".join(out)


def student_version(nb):
    """(the notebook without solutions, outputs, run metadata and widget state; the number of solutions removed)."""
    removed = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # execution timestamps
        if cell.cell_type == "code":
            if "### BEGIN SOLUTION" in cell.source:
                cell.source = strip_solutions(cell.source)
                removed += 1
            cell.outputs, cell.execution_count = [], None
    for key in ("recbook", "widgets"):  # tools/run_course.py's run record; the state of the cleared widgets
        nb.metadata.pop(key, None)
    return nb, removed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "student"), help="output folder (default: student/)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))
    for path in sources:
        nb, removed = student_version(nbformat.read(path, as_version=4))
        nbformat.write(nb, out / path.name)
        print(f"{path.name}: {removed} solution(s) removed → {out / path.name}")
    for stale in sorted(set(out.glob("[0-9][0-9]*.ipynb")) - {out / p.name for p in sources}):
        stale.unlink()  # its notebook was renamed or removed
        print(f"{stale.name}: no such notebook any more, removed from {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
