"""The release (recbook_course/release.py): badges, Colab set-up cells and README links come from it; the student versions
in student/ are what `make student` writes and hold no solution; `make release-check` (slow, opt-in)."""

import io
import os
import re
import tarfile
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest

import recbook
from recbook_course import release
from tests.helpers import load_tool

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))


load = load_tool  # tools/<name>.py as a module


def test_the_release_tag_is_the_package_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert recbook.__version__ == version and release.TAG == f"v{version}"


def test_release_urls_and_install_spec():
    url = f"https://colab.research.google.com/github/{release.REPO}/blob/{release.TAG}/student/00_setup.ipynb"
    assert release.colab_url("00_setup") == release.colab_url("notebooks/00_setup.ipynb") == url
    assert release.colab_url("00_setup", folder="notebooks").endswith(f"/blob/{release.TAG}/notebooks/00_setup.ipynb")
    assert release.badge_markdown("00_setup") == f"[![Open In Colab]({release.BADGE_IMAGE})]({url})"
    assert release.install_spec(("model",)) == f"recbook[model] @ git+https://github.com/{release.REPO}@{release.TAG}"
    assert release.install_spec(("model", "serve"), source="file:///w.whl") == "recbook[model,serve] @ file:///w.whl"
    assert release.extras_for("17_serving.ipynb") == ("model", "compress", "serve") and release.extras_for("00_setup") == ("model",)
    cell = release.install_cell_source(("model", "compress"))
    assert release.INSTALL_CELL_MARKER in cell and f'"{release.install_spec(("model", "compress"))}"' in cell
    compile(cell, "<colab cell>", "exec")


@pytest.mark.parametrize("folder", ["notebooks", "student"])
def test_every_badge_and_colab_cell_is_the_release_one(folder):
    """No notebook carries another repository URL, tag or install line than recbook_course/release.py generates."""
    tools = load("release_cells")
    paths = sorted((ROOT / folder).glob("[0-9][0-9]*.ipynb"))
    assert [p.name for p in paths] == [p.name for p in NOTEBOOKS]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        badge, setup = tools.expected_cells(path.stem)
        badges, setups = tools.badge_cells(nb), tools.install_cells(nb)
        assert len(badges) == 1 and tools.BADGE.findall(nb.cells[badges[0]].source) == [badge], \
            f"{folder}/{path.name}: the Colab badge is not recbook_course/release.py's; run python tools/release_cells.py and make student"
        assert len(setups) == 1 and nb.cells[setups[0]].source == setup, \
            f"{folder}/{path.name}: the Colab set-up cell is not recbook_course/release.py's; run python tools/release_cells.py and make student"
        text = "\n".join(c.source for c in nb.cells)
        assert re.findall(r"colab\.research\.google\.com/github/\S+?\.ipynb", text) == [release.colab_url(path.stem).split("//", 1)[1]]
        assert re.findall(r"git\+https?://\S+?(?=[\"'\s])", text) == [release.GIT_URL]


def test_readme_colab_links_open_the_release_student_versions():
    tools = load("release_cells")
    readme = (ROOT / "README.md").read_text()
    assert tools.update_readme_text(readme) == readme, "README.md's Colab links differ from recbook_course/release.py: run python tools/release_cells.py"
    for path in NOTEBOOKS:
        assert release.colab_url(path.stem) in readme, f"README.md has no Colab link for {path.name}"


def test_release_cells_rewrites_only_the_badge_and_the_colab_cell(tmp_path):
    tools = load("release_cells")
    v4 = nbformat.v4
    old_setup = ('# NBVAL_IGNORE_OUTPUT\n# Colab set-up: installs recbook\nimport sys\nif "google.colab" in sys.modules:\n'
                 '    pip("recbook[model] @ git+https://github.com/someone/fork@main")')
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# 12 · Title\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                             "(https://colab.research.google.com/github/someone/fork/blob/main/notebooks/17_serving.ipynb)\n\n**Time:** 1 min"),
        v4.new_code_cell(old_setup, execution_count=1, outputs=[v4.new_output("stream", text="Not on Colab\n")]),
        v4.new_code_cell("x = 1", execution_count=2, outputs=[v4.new_output("stream", text="kept\n")]),
    ])
    nb.cells[1].metadata["execution"] = {"iopub.status.idle": "then"}
    nbformat.write(nb, tmp_path / "17_serving.ipynb")
    readme = tmp_path / "README.md"
    readme.write_text("| 12 | [![Open In Colab](x.svg)](https://colab.research.google.com/github/someone/fork/blob/main/notebooks/17_serving.ipynb) |\n")
    args = ["--notebooks", str(tmp_path), "--readme", str(readme)]
    assert tools.main(args + ["--check"]) == 1
    assert tools.main(args) == 0 and tools.main(args + ["--check"]) == 0
    new = nbformat.read(tmp_path / "17_serving.ipynb", as_version=4)
    assert new.cells[0].source == f"# 12 · Title\n\n{release.badge_markdown('17_serving')}\n\n**Time:** 1 min"
    assert new.cells[1].source == release.install_cell_source(("model", "compress", "serve"))
    assert new.cells[1].outputs == nb.cells[1].outputs and new.cells[1].metadata == nb.cells[1].metadata
    assert new.cells[2] == nb.cells[2]
    assert release.colab_url("17_serving") in readme.read_text() and "someone" not in readme.read_text()
    v4nb = v4.new_notebook(cells=[v4.new_markdown_cell("no badge"), v4.new_code_cell(old_setup)])
    with pytest.raises(ValueError, match="badge"):
        tools.update_notebook(v4nb, "99_x")


def test_student_folder_is_what_make_student_writes(tmp_path):
    """student/ is committed; it must be exactly what tools/make_student_versions.py writes from notebooks/ today."""
    student = load("make_student_versions")
    assert student.main(["--out", str(tmp_path)]) == 0
    fresh = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    stored = sorted(p.name for p in (ROOT / "student").glob("*.ipynb"))
    assert stored == fresh, "student/ lacks or has extra notebooks: run make student"
    for name in fresh:
        a, b = nbformat.read(ROOT / "student" / name, as_version=4), nbformat.read(tmp_path / name, as_version=4)
        assert a.metadata == b.metadata, f"student/{name}: notebook metadata differ; run make student"
        assert len(a.cells) == len(b.cells), f"student/{name}: {len(a.cells)} cells, a fresh build has {len(b.cells)}; run make student"
        for i, (x, y) in enumerate(zip(a.cells, b.cells)):
            for key in ("cell_type", "source", "metadata", "outputs", "execution_count"):
                assert x.get(key) == y.get(key), f"student/{name}, cell {i}: {key} differs from a fresh build; run make student"


def solution_only_lines(nb) -> set[str]:
    """Lines (stripped, non-trivial) that occur inside solution blocks and nowhere else in the notebook."""
    inside_lines, outside_lines = set(), set()
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
                inside = "BEGIN" in line
                continue
            (inside_lines if inside else outside_lines).add(line.strip())
    return {line for line in inside_lines - outside_lines if len(line) > 3}


def test_student_versions_hold_no_solution():
    for path in NOTEBOOKS:
        secret = solution_only_lines(nbformat.read(path, as_version=4))
        assert secret, f"{path.name}: no solution found"
        nb = nbformat.read(ROOT / "student" / path.name, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "SOLUTION" not in text, f"student/{path.name} carries solution markers"
        leaked = sorted(line for line in secret if line in {ln.strip() for ln in text.splitlines()})
        assert not leaked, f"student/{path.name} contains solution lines: {leaked[:3]}"
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
        assert "recbook" not in nb.metadata and "widgets" not in nb.metadata  # no run record, no widget state
        assert text.count('raise NotImplementedError("your code here")') == text.count("NotImplementedError") >= 3


def test_release_check_flags_what_must_not_ship(tmp_path):
    check = load("release_check")
    wheel, sdist = tmp_path / "recbook-0.1.0-py3-none-any.whl", tmp_path / "recbook-0.1.0.tar.gz"

    def build(wheel_names, sdist_names):
        with zipfile.ZipFile(wheel, "w") as zf:
            for name in wheel_names:
                zf.writestr(name, "x")
        with tarfile.open(sdist, "w:gz") as tf:
            for name in sdist_names:
                info = tarfile.TarInfo(f"recbook-0.1.0/{name}")
                info.size = 1
                tf.addfile(info, io.BytesIO(b"x"))

    good_wheel = ["recbook/__init__.py", "recbook/data/movielens.py", "recbook/runs/recipe.py", "recbook_course/exercises/core.py",
                  "recbook-0.1.0.dist-info/METADATA"]
    build(good_wheel, ["pyproject.toml", "README.md", "recbook/__init__.py", "recbook/runs/cache.py", "tests/unit/data/test_movielens.py",
                       "tests/unit/runs/test_cache.py"])
    assert check.check_artifacts(wheel, sdist) == []
    build(good_wheel + ["ml-100k/u.data", "notebooks/00_setup.ipynb"], ["recbook/data/u.item", "student/00_setup.ipynb", "classroom/hidden_tests/01_cross_entropy.py"])
    problems = "\n".join(check.check_artifacts(wheel, sdist))
    for expected in ("wheel: ml-100k/u.data is outside the recbook", "wheel: ml-100k/u.data looks like MovieLens", "wheel: notebooks/00_setup.ipynb is a notebook",
                     "sdist: recbook/data/u.item looks like MovieLens", "sdist: student/00_setup.ipynb is a notebook",
                     "sdist: classroom/hidden_tests/01_cross_entropy.py is not meant to be released"):
        assert expected in problems


@pytest.mark.slow
def test_release_check_installs_the_wheel_and_runs_notebooks_00_01():
    """`make release-check`: about 1¼ minutes on a 2-core CPU with the wheels cached locally (more when pip downloads)."""
    if os.environ.get("RECBOOK_RELEASE_CHECK") != "1":
        pytest.skip("set RECBOOK_RELEASE_CHECK=1 to build, install into a clean venv and run notebooks 00 and 01 (make release-check)")
    assert load("release_check").main([]) == 0
