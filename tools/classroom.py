"""Classroom assignments from the course notebooks, graded by nbgrader with hidden tests.

    python tools/classroom.py source  [--assignment 01_cross_entropy ...] [--course build/classroom]
    python tools/classroom.py release [--assignment ...]                    (source, then nbgrader generate_assignment)
    python tools/classroom.py grade SUBMISSIONS [--assignment ...] [--timeout 900]
    make classroom | make grade SUBMISSIONS=DIR [ASSIGNMENT=01_cross_entropy] [TIMEOUT=900]

Each course notebook is one assignment (its file name without ``.ipynb``). ``source`` writes an nbgrader course
folder (default ``build/classroom/``): in ``source/<assignment>/`` every exercise cell of the notebook is split into
an nbgrader *autograded answer* cell (the solution between ``### BEGIN SOLUTION`` / ``### END SOLUTION``) and an
*autograder tests* cell worth the exercise's points, which runs the notebook's visible self-check and then the
exercise's hidden tests (between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``) from
``classroom/hidden_tests/<notebook>.py``. ``release`` runs nbgrader's ``generate_assignment``: ``release/<assignment>/``
has the solutions and hidden tests removed and the visible checks kept. ``grade`` copies each learner's notebooks
from ``SUBMISSIONS/<learner>/<notebook>.ipynb`` into the course folder, runs nbgrader ``autograde`` (a fresh kernel,
every cell under a time limit: a cell past it is interrupted and fails, the rest of the notebook still runs) and
writes ``SUBMISSIONS/grades.csv``: one row per learner, the points of every exercise, the total, and notes saying
why points were lost (a self-check failed, only the hidden tests failed, a timeout, an error in the answer cell).
Submissions may be the nbgrader release versions or the plain ``student/`` notebooks of ``make student`` (no
nbgrader metadata: their exercise cells are found by their self-check and split the same way).

Why nbgrader rather than otter-grader: the course notebooks already use nbgrader's markers (``### BEGIN SOLUTION``,
which ``make student`` strips, and ``### BEGIN HIDDEN TESTS`` for the hidden tests), so no notebook is rewritten;
its gradebook (SQLite) keeps a score per learner and test cell that the formgrader, manual grading and feedback
reuse; autograde restores the test cells from the gradebook, so a learner cannot edit or delete the tests; and it
runs in the course's own environment, where otter-grader would need its own question/test format in the notebooks
and, for its batch grader, Docker images carrying torch and the course's models.

Grading runs learners' code with the grader's rights: grade untrusted submissions in a container or a VM.
"""

import argparse
import ast
import contextlib
import csv
import os
import re
import shutil
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
HIDDEN_TESTS = ROOT / "classroom" / "hidden_tests"
COURSE = ROOT / "build" / "classroom"
COURSE_ID = "recbook"
DEFAULT_TIMEOUT = 900  # seconds per cell, as tools/run_course.py: the longest course cells train for minutes
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

END_SOLUTION = re.compile(r"^\s*### END SOLUTION\s*$")
HEADER = re.compile(r"^# %% (?P<id>\S+) \| (?P<points>\d+(?:\.\d+)?) points?\s*$")
HIDDEN_FUNCTION = "_hidden_tests"  # the hidden tests run inside it: their names never clobber the learner's
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Exercise:
    id: str  # the id the self-check uses, e.g. "01.bce"
    notebook: str  # the assignment: the notebook's file name without .ipynb
    cell: int  # index of the exercise cell in the course notebook
    answer: str  # everything up to ``### END SOLUTION``: the autograded answer cell
    check: str  # the visible self-check: the first statements after the answer, up to the last one with an assert
    trailing: str  # code after the self-check (e.g. a print that uses the answer): an ordinary cell after the tests


@dataclass(frozen=True)
class HiddenTest:
    id: str
    points: float
    code: str
    path: Path
    line: int  # where the section starts in path


# --------------------------------------------------------------------------------------------- exercises


def course_notebooks(folder: Path = NOTEBOOKS) -> dict[str, Path]:
    """``{assignment id: notebook path}`` for every course notebook (``NN_name.ipynb``)."""
    return {p.stem: p for p in sorted(folder.glob("[0-9][0-9]*.ipynb"))}


def _statements(code: str) -> list[ast.stmt]:
    try:
        return ast.parse(code).body
    except SyntaxError as exc:
        raise ValueError(f"the code after ### END SOLUTION is not valid Python: {exc}") from exc


def split_exercise(source: str) -> tuple[str, str, str]:
    """(answer, visible check, trailing code) of an exercise cell.

    The answer ends at the first top-level line after the last ``### END SOLUTION`` (so a solution inside a
    function keeps the function whole); the check is the following statements up to the last one that contains an
    ``assert``; whatever follows is trailing code."""
    lines = source.splitlines()
    ends = [i for i, line in enumerate(lines) if END_SOLUTION.match(line)]
    if not ends:
        raise ValueError("an exercise cell needs ### END SOLUTION")
    start = next((i for i in range(ends[-1] + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace() and not lines[i].startswith("#")),
                 len(lines))
    answer, rest = "\n".join(lines[:start]).rstrip(), lines[start:]
    body = _statements("\n".join(rest))
    with_assert = [s for s in body if any(isinstance(n, ast.Assert) for n in ast.walk(s))]
    if not with_assert:
        raise ValueError("an exercise cell needs a visible self-check (an assert after ### END SOLUTION)")
    last = with_assert[-1].end_lineno
    return answer, "\n".join(rest[:last]).strip(), "\n".join(rest[last:]).strip()


def exercise_id(answer: str, check: str, prefix: str) -> str:
    """The id in ``check("ID", ...)``; for a check without ``check()`` (a plain assert), ``prefix.<function name>``."""
    for node in ast.walk(ast.parse(check)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            return node.args[0].value
    functions = [s.name for s in ast.parse(answer).body if isinstance(s, ast.FunctionDef)]
    if not functions:
        raise ValueError(f"cannot name the exercise: no check('ID', ...) in {check!r} and no function in its answer")
    return f"{prefix}.{functions[-1]}"


def exercises(path: Path) -> list[Exercise]:
    """The exercises of a course notebook, in order: its code cells with ``### BEGIN SOLUTION``."""
    nb = nbformat.read(path, as_version=4)
    out = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
            try:
                answer, check, trailing = split_exercise(cell.source)
                ex_id = exercise_id(answer, check, path.stem.split("_")[0])
            except ValueError as exc:
                raise ValueError(f"{path.name}, cell {index}: {exc}") from exc
            out.append(Exercise(ex_id, path.stem, index, answer, check, trailing))
    return out


def grade_id(ex_id: str) -> str:
    """nbgrader's id of the answer cell (``01.bce`` → ``ex_01_bce``); the tests cell adds ``_tests``."""
    return "ex_" + re.sub(r"[^A-Za-z0-9]+", "_", ex_id)


# ------------------------------------------------------------------------------------------ hidden tests


def load_hidden_tests(folder: Path = HIDDEN_TESTS) -> dict[str, HiddenTest]:
    """``{exercise id: HiddenTest}`` from ``folder/*.py``: sections headed ``# %% <id> | <points> point(s)``."""
    tests: dict[str, HiddenTest] = {}
    for path in sorted(folder.glob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        heads = [(i, HEADER.match(line)) for i, line in enumerate(lines) if line.startswith("# %%")]
        for n, (i, match) in enumerate(heads):
            if match is None:
                raise ValueError(f"{path}:{i + 1}: a section header must read '# %% <exercise id> | <points> point(s)'")
            end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
            code = "\n".join(lines[i + 1:end]).strip()
            ex_id = match["id"]
            if ex_id in tests:
                raise ValueError(f"{path}:{i + 1}: hidden tests for {ex_id} are defined twice")
            if not code:
                raise ValueError(f"{path}:{i + 1}: no hidden test code for {ex_id}")
            points = float(match["points"])
            tests[ex_id] = HiddenTest(ex_id, int(points) if points.is_integer() else points, code, path, i + 1)
    return tests


def hidden_block(code: str) -> str:
    """The hidden tests as nbgrader's hidden region: inside a function, so their variables stay local."""
    return (f"### BEGIN HIDDEN TESTS\ndef {HIDDEN_FUNCTION}():\n{textwrap.indent(code, '    ')}\n\n\n"
            f"{HIDDEN_FUNCTION}()\n### END HIDDEN TESTS")


# ---------------------------------------------------------------------------------------- source notebooks


def _meta(ex_id: str, tests: bool, points: float = 0) -> dict:
    meta = {"grade": tests, "grade_id": grade_id(ex_id) + ("_tests" if tests else ""), "locked": tests,
            "schema_version": 3, "solution": not tests, "task": False}
    if tests:
        meta["points"] = points
    return {"nbgrader": meta, "recbook": {"exercise": ex_id}}


def test_cell_source(ex: Exercise, hidden: HiddenTest) -> str:
    points = f"{hidden.points} point{'' if hidden.points == 1 else 's'}"
    header = (f"# {ex.id} — graded ({points}): the self-check below, and hidden tests when your notebook is graded.\n"
              "from recbook_course.exercises import check\n\n")
    return header + ex.check + "\n" + hidden_block(hidden.code)


def exercise_cells(ex: Exercise, hidden: HiddenTest, answer: str | None = None) -> list:
    """The cells that replace an exercise cell: answer, tests and (if any) the trailing code."""
    v4 = nbformat.v4
    cells = [v4.new_code_cell(ex.answer if answer is None else answer, metadata=_meta(ex.id, False)),
             v4.new_code_cell(test_cell_source(ex, hidden), metadata=_meta(ex.id, True, hidden.points))]
    if ex.trailing:
        cells.append(v4.new_code_cell(ex.trailing))
    return cells


def source_notebook(path: Path, hidden: dict[str, HiddenTest]) -> nbformat.NotebookNode:
    """The course notebook as nbgrader's source version: exercise cells split, outputs and run records cleared."""
    nb = nbformat.read(path, as_version=4)
    by_cell = {ex.cell: ex for ex in exercises(path)}
    missing = [ex.id for ex in by_cell.values() if ex.id not in hidden]
    if missing:
        raise ValueError(f"{path.name}: no hidden tests for {', '.join(missing)} (add them to {HIDDEN_TESTS.relative_to(ROOT)}/{path.stem}.py)")
    cells = []
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if index in by_cell:
            cells.extend(exercise_cells(by_cell[index], hidden[by_cell[index].id]))
        else:
            cells.append(cell)
    nb.cells = cells
    for key in ("recbook", "widgets"):
        nb.metadata.pop(key, None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def write_source(course: Path, assignments: list[str], hidden_folder: Path = HIDDEN_TESTS) -> list[Path]:
    """Write ``course/source/<assignment>/<assignment>.ipynb`` (and the course's nbgrader_config.py)."""
    hidden, notebooks = load_hidden_tests(hidden_folder), course_notebooks()
    written = []
    for name in assignments:
        folder = course / "source" / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        nbformat.write(source_notebook(notebooks[name], hidden), folder / f"{name}.ipynb")
        written.append(folder / f"{name}.ipynb")
    (course / "nbgrader_config.py").write_text(
        "# Written by tools/classroom.py: the settings `make grade` uses, for nbgrader's own commands run in this folder.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.Execute.timeout = {DEFAULT_TIMEOUT}\n"
        "c.OverwriteCells.add_missing_cells = True\n", encoding="utf-8")
    return written


# ------------------------------------------------------------------------------------------------ nbgrader


def nbgrader_api(course: Path, timeout: int = DEFAULT_TIMEOUT):
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    scripts = str(Path(sys.executable).parent)  # nbgrader runs `alembic` (its gradebook's migrations) from PATH
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    config = Config()
    config.CourseDirectory.root = str(course.resolve())
    config.CourseDirectory.course_id = COURSE_ID
    config.Execute.timeout = timeout  # per cell; on a timeout the kernel is interrupted and the next cell runs
    config.OverwriteCells.add_missing_cells = True  # a deleted tests cell is put back (and run), not skipped
    config.Exchange.root = str((course / "exchange").resolve())  # unused: keeps nbgrader away from /srv/nbgrader
    return NbGraderAPI(config=config)


def _checked(result: dict, what: str) -> dict:
    if not result.get("success"):
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('log', '')}\n{result.get('error', '')}")
    return result


def release(course: Path, assignments: list[str], hidden_folder: Path = HIDDEN_TESTS) -> list[Path]:
    """Source versions, then nbgrader generate_assignment: ``course/release/<assignment>/<assignment>.ipynb``."""
    write_source(course, assignments, hidden_folder)
    api = nbgrader_api(course)
    out = []
    for name in assignments:
        _checked(api.generate_assignment(name, force=True, create=True), f"generate_assignment {name}")
        out.append(course / "release" / name / f"{name}.ipynb")
    return out


# --------------------------------------------------------------------------------------------- submissions


def _has_nbgrader_cells(nb) -> bool:
    return any("nbgrader" in c.metadata for c in nb.cells)


def adopt(nb, source_path: Path, hidden: dict[str, HiddenTest]):
    """A submission without nbgrader metadata (a ``student/`` notebook, or the course notebook itself) in the
    release's shape: each exercise cell — found by its visible self-check — becomes an answer cell (what the
    learner wrote before the check) and the tests cell; an exercise whose check cannot be found gets its tests cell
    at the end of the notebook, where it checks whatever the learner's notebook defined."""
    cells, pending = list(nb.cells), exercises(source_path)
    out, unmatched = [], []
    for cell in cells:
        if cell.cell_type != "code" or not pending:
            out.append(cell)
            continue
        lines = cell.source.splitlines()
        found = None
        for ex in pending:
            check = [line.rstrip() for line in ex.check.splitlines()]
            at = next((i for i in range(len(lines) - len(check) + 1) if [s.rstrip() for s in lines[i:i + len(check)]] == check), None)
            if at is not None:
                found = (ex, at, len(check))
                break
        if found is None:
            out.append(cell)
            continue
        ex, at, n = found
        unmatched.extend(pending[:pending.index(ex)])  # an earlier exercise's check was not found in its place
        pending = pending[pending.index(ex) + 1:]
        answer = "\n".join(lines[:at]).rstrip()
        trailing = "\n".join(lines[at + n:]).strip()
        new = exercise_cells(Exercise(ex.id, ex.notebook, ex.cell, answer, ex.check, ""), hidden[ex.id])
        out.extend(new + ([nbformat.v4.new_code_cell(trailing)] if trailing else []))
    for ex in unmatched + pending:
        out.append(exercise_cells(ex, hidden[ex.id], answer="# (the self-check of this exercise was not found in the submission)")[1])
    nb.cells = out
    return nb


@contextlib.contextmanager
def _grading_environment():
    """Learners' kernels inherit the environment: not the course runner's results file. Two warnings about nbgrader's
    own code are silenced (SQLAlchemy's "not in session" while it updates the gradebook; nbformat's "missing id" for a
    tests cell it puts back): they say nothing about the grades."""
    from nbformat.warnings import MissingIDFieldWarning
    from sqlalchemy.exc import SAWarning

    saved = os.environ.pop("RECBOOK_RESULTS", None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            yield
    finally:
        if saved is not None:
            os.environ["RECBOOK_RESULTS"] = saved


def _error_text(output) -> str:
    name, value = output.get("ename", "Error"), str(output.get("evalue", "")).strip().splitlines()
    text = f"{name}: {value[0]}" if value and value[0] else name
    return text[:160]


def _cell_problem(cell) -> tuple[str, bool] | None:
    """(the first error of a cell, whether it was raised inside the hidden tests), or None."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if not errors:
        return None
    frames = [ANSI.sub("", line).splitlines()[0] for o in errors for line in o.get("traceback", []) if line.strip()]
    hidden = any(re.search(rf"line \d+, in {HIDDEN_FUNCTION}\b", frame) for frame in frames)
    if any(o.get("ename") == "CellTimeoutError" for o in errors):
        return "timed out", hidden
    return _error_text(errors[0]), hidden


def _failure(result: dict) -> str:
    """Why nbgrader could not grade a notebook, in a line (from its log)."""
    text = ANSI.sub("", (result.get("log") or "") + "\n" + (result.get("error") or ""))
    if "DeadKernelError" in text:
        return "its kernel died (os._exit, a crash in native code, or out of memory)"
    errors = [line.strip() for line in text.splitlines() if re.match(r"^\s*[\w.]+(Error|Exception): ", line) and "NbGraderException" not in line]
    return errors[-1][:200] if errors else "nbgrader autograde failed (see its log)"


def _self_check_message(cell, ex_id: str) -> str | None:
    """The hint ``check()`` printed (``❌ 01.bce: …``) in a tests cell, without the mark and the id."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    lines = [line for line in text.splitlines() if line.startswith("❌")]
    if not lines:
        return None
    message = lines[-1][1:].strip()
    message = message[len(ex_id) + 1:].strip() if message.startswith(ex_id + ":") else message
    return message[:160]


def _notes(autograded: Path, ids: dict[str, str]) -> list[str]:
    """Why exercises lost points, from the autograded notebook's error outputs."""
    nb = nbformat.read(autograded, as_version=4)
    by_id = {}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid:
            by_id[gid] = cell
    notes = []
    for gid, ex_id in ids.items():
        answer, tests = by_id.get(gid), by_id.get(gid + "_tests")
        answer_problem = _cell_problem(answer) if answer is not None else None
        test_problem = _cell_problem(tests) if tests is not None else None
        if answer_problem:
            notes.append(f"{ex_id}: the answer cell {'timed out' if answer_problem[0] == 'timed out' else 'raised ' + answer_problem[0]}")
        elif test_problem:
            what, hidden = test_problem
            if what == "timed out":
                notes.append(f"{ex_id}: timed out in the {'hidden tests' if hidden else 'self-check'}")
            elif hidden:
                notes.append(f"{ex_id}: only the hidden tests failed ({what})")
            else:
                said = _self_check_message(tests, ex_id)
                notes.append(f"{ex_id}: the self-check failed ({said or what})")
    return notes


def grade(submissions: Path, assignments: list[str] | None = None, course: Path = COURSE, timeout: int = DEFAULT_TIMEOUT,
          hidden_folder: Path = HIDDEN_TESTS, log=print) -> list[dict]:
    """Autograde ``submissions/<learner>/<notebook>.ipynb`` with nbgrader; write ``submissions/grades.csv``.

    Returns the rows: ``learner``, one column per exercise id (points), ``total``, ``max``, ``notes``."""
    from nbgrader.api import Gradebook, MissingEntry

    submissions = Path(submissions)
    learners = sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not learners:
        raise ValueError(f"{submissions} has no learner folders (expected {submissions}/<learner>/<notebook>.ipynb)")
    notebooks = course_notebooks()
    if assignments is None:
        assignments = [name for name in notebooks if any((submissions / who / f"{name}.ipynb").is_file() for who in learners)]
        if not assignments:
            raise ValueError(f"no course notebook (e.g. 01_cross_entropy.ipynb) in any learner folder of {submissions}")
    unknown = [a for a in assignments if a not in notebooks]
    if unknown:
        raise ValueError(f"unknown assignment(s) {unknown}; the course notebooks are {list(notebooks)}")
    course = Path(course)
    hidden = load_hidden_tests(hidden_folder)
    start = time.perf_counter()
    release(course, assignments, hidden_folder)
    log(f"released {', '.join(assignments)} in {time.perf_counter() - start:.1f} s; grading {len(learners)} learner(s), "
        f"{timeout} s per cell")
    api = nbgrader_api(course, timeout)
    by_assignment = {a: exercises(notebooks[a]) for a in assignments}
    points = {ex.id: hidden[ex.id].points for a in assignments for ex in by_assignment[a]}
    rows = []
    for who in learners:
        row = {"learner": who, **{ex_id: 0 for ex_id in points}, "total": 0, "max": sum(points.values()), "notes": []}
        for name in assignments:
            ids = {grade_id(ex.id) + "_tests": ex.id for ex in by_assignment[name]}
            submitted = course / "submitted" / who / name
            if submitted.exists():
                shutil.rmtree(submitted)
            autograded = course / "autograded" / who / name
            if autograded.exists():
                shutil.rmtree(autograded)
            path = submissions / who / f"{name}.ipynb"
            if not path.is_file():
                row["notes"].append(f"{name}: not submitted")
                continue
            try:
                nb = nbformat.read(path, as_version=4)
                if not _has_nbgrader_cells(nb):
                    nb = adopt(nb, notebooks[name], hidden)
                submitted.mkdir(parents=True)
                nbformat.write(nb, submitted / f"{name}.ipynb")
            except Exception as exc:  # not a notebook (truncated upload, wrong file): scored 0, said why
                row["notes"].append(f"{name}: unreadable notebook ({type(exc).__name__}: {str(exc)[:80]})")
                continue
            began = time.perf_counter()
            with _grading_environment():
                result = api.autograde(name, who, force=True, create=True)
            seconds = time.perf_counter() - began
            if not result.get("success"):
                reason = _failure(result)
                row["notes"].append(f"{name}: not graded, 0 points — {reason}")
                log(f"  {who} / {name}: NOT GRADED after {seconds:.0f} s: {reason}")
                continue
            with Gradebook(f"sqlite:///{course.resolve() / 'gradebook.db'}", course_id=COURSE_ID) as gb:
                try:
                    graded = gb.find_submission_notebook(name, name, who)
                except MissingEntry:
                    row["notes"].append(f"{name}: no grades recorded")
                    continue
                for g in graded.grades:
                    if g.name in ids:
                        row[ids[g.name]] = g.score or 0
            row["notes"].extend(_notes(autograded / f"{name}.ipynb", {gid[: -len("_tests")]: ex_id for gid, ex_id in ids.items()}))
            got = sum(row[i] for i in ids.values())
            log(f"  {who} / {name}: {got:g} of {sum(points[i] for i in ids.values()):g} points in {seconds:.0f} s")
        row["total"] = sum(row[ex_id] for ex_id in points)
        row["notes"] = "; ".join(row["notes"])
        rows.append(row)
    out = submissions / "grades.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["learner", *points, "total", "max", "notes"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in row.items()})
    log(f"wrote {out} ({len(rows)} learner(s), {time.perf_counter() - start:.0f} s)")
    return rows


# ---------------------------------------------------------------------------------------------------- CLI


def _assignments(values: list[str] | None) -> list[str] | None:
    """``--assignment 01_cross_entropy --assignment 02`` or ``ASSIGNMENT="01 02"``: full names or unique prefixes."""
    if not values:
        return None
    names, out = list(course_notebooks()), []
    for value in " ".join(values).replace(",", " ").split():
        hits = [n for n in names if n == value] or [n for n in names if n.startswith(value)]
        if len(hits) != 1:
            raise SystemExit(f"--assignment {value!r} matches {hits or 'no notebook'}; the course notebooks are {names}")
        out.append(hits[0])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("source", "write nbgrader source versions (solutions + tests with hidden tests)"),
                       ("release", "source, then nbgrader generate_assignment: the versions learners get"),
                       ("grade", "autograde SUBMISSIONS/<learner>/<notebook>.ipynb into SUBMISSIONS/grades.csv")):
        p = sub.add_parser(name, help=text)
        if name == "grade":
            p.add_argument("submissions", type=Path, help="a folder with one sub-folder per learner")
            p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help=f"seconds per cell (default {DEFAULT_TIMEOUT})")
        p.add_argument("--assignment", action="append", help="notebook(s) to use, e.g. 01_cross_entropy (default: all; "
                       "for grade: those in the submissions)")
        p.add_argument("--course", type=Path, default=COURSE, help="the nbgrader course folder (default build/classroom)")
        p.add_argument("--hidden-tests", type=Path, default=HIDDEN_TESTS, help="folder of hidden tests (default classroom/hidden_tests)")
    args = parser.parse_args(argv)
    assignments = _assignments(args.assignment)
    if args.command == "grade":
        rows = grade(args.submissions, assignments, args.course, args.timeout, args.hidden_tests)
        for row in rows:
            print(f"{row['learner']}: {row['total']:g} / {row['max']:g}" + (f"  ({row['notes']})" if row["notes"] else ""))
        return 0
    assignments = assignments or list(course_notebooks())
    paths = (write_source if args.command == "source" else release)(args.course, assignments, args.hidden_tests)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
