"""The course is read in file order: notebooks numbered 00, 01, 02, … with no gap, listed in that order by README.md's
course map, and everything named after a notebook (student versions, hidden tests, exercise checkers, exercise ids)
follows the same numbers."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def readme_order() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Course map", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (\d\d) \| \[\w+\]\(notebooks/(\1_\w+)\.ipynb\)", section, flags=re.M)


def test_notebooks_are_numbered_contiguously_from_00():
    assert [n[:2] for n in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))], NOTEBOOKS
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+", n) for n in NOTEBOOKS), "NN_name: two digits, then a lowercase name"


def test_the_readme_lists_the_notebooks_in_file_order():
    rows = readme_order()
    assert [name for _, name in rows] == NOTEBOOKS, "README.md's course map must list notebooks/ in file order"


def test_everything_named_after_a_notebook_follows_its_number():
    assert sorted(p.stem for p in (ROOT / "student").glob("*.ipynb")) == NOTEBOOKS
    assert sorted(p.stem for p in (ROOT / "classroom" / "hidden_tests").glob("*.py")) == NOTEBOOKS
    checkers = sorted(p.stem.removeprefix("ch") for p in (ROOT / "recbook_course" / "exercises").glob("ch*.py"))
    assert checkers == NOTEBOOKS


def test_exercise_ids_carry_their_notebooks_number():
    from recbook_course.exercises import list_exercises
    from recbook_course.exercises.core import _REGISTRY as EXERCISES

    for exercise_id in list_exercises():
        notebook = EXERCISES[exercise_id].notebook
        assert notebook in NOTEBOOKS and exercise_id.split(".")[0] == notebook[:2], (exercise_id, notebook)
