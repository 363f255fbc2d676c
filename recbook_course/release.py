"""The course release: the one place that names the repository and the tag that Colab badges and install cells use.

Every notebook's "Open In Colab" badge and its Colab set-up cell are generated from here
(``python tools/release_cells.py`` rewrites them; a test fails when a notebook carries another URL or tag), and so
are the website's Colab buttons. To cut a new release: bump ``version`` in pyproject.toml and
``recbook.__version__``, run ``python tools/release_cells.py`` and ``make student``, check with
``make release-check``, then tag the commit ``TAG`` and push the tag.

Learners open the **student** versions (``student/``: solutions removed, self-checks kept); the executed solutions
are in ``notebooks/``.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from recbook import __version__

REPO = "recbook/recbook"  # GitHub owner/name
TAG = f"v{__version__}"  # the git tag of the release: "v" + the version in pyproject.toml
REPO_URL = f"https://github.com/{REPO}"
GIT_URL = f"git+{REPO_URL}@{TAG}"  # what pip installs on Colab

STUDENT_FOLDER = "student"  # the release versions learners open (no solutions)
SOLUTIONS_FOLDER = "notebooks"  # the executed solutions
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"

# The extras each notebook's Colab cell installs (by notebook name without .ipynb); any other notebook gets DEFAULT_EXTRAS.
DEFAULT_EXTRAS: tuple[str, ...] = ("model",)
NOTEBOOK_EXTRAS: dict[str, tuple[str, ...]] = {
    "11_pruning": ("model", "compress"),
    "12_distillation": ("model", "compress"),
    "13_quantization": ("model", "compress"),
    "14_compression_pareto": ("model", "compress"),
    "17_serving": ("model", "compress", "serve"),
    "18_continual": ("model", "compress", "serve"),
}

# The first line of every Colab set-up cell: how tools/release_cells.py finds the cell.
INSTALL_CELL_MARKER = "# Colab set-up:"


def notebook_name(notebook) -> str:
    """``"00_setup"`` from ``"00_setup"``, ``"00_setup.ipynb"`` or a path to it."""
    name = PurePosixPath(str(notebook).replace("\\", "/")).name
    return name[: -len(".ipynb")] if name.endswith(".ipynb") else name


def colab_url(notebook, folder: str = STUDENT_FOLDER) -> str:
    """The Colab URL that opens ``notebook`` (a name or path) from ``folder`` of the release tag."""
    return f"https://colab.research.google.com/github/{REPO}/blob/{TAG}/{folder}/{notebook_name(notebook)}.ipynb"


def badge_markdown(notebook, folder: str = STUDENT_FOLDER) -> str:
    """The "Open In Colab" badge (markdown) of ``notebook``: it opens the student version of the release."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook, folder)})"


def extras_for(notebook) -> tuple[str, ...]:
    """The extras the notebook's Colab cell installs."""
    return NOTEBOOK_EXTRAS.get(notebook_name(notebook), DEFAULT_EXTRAS)


def install_spec(extras=DEFAULT_EXTRAS, source: str = GIT_URL) -> str:
    """The pip requirement the Colab cell installs, e.g. ``recbook[model] @ git+https://github.com/recbook/recbook@v0.1.0``.

    ``source`` replaces the git URL (``make release-check`` passes the built wheel's ``file://`` URL)."""
    extras = tuple(extras)
    return f"recbook[{','.join(extras)}] @ {source}" if extras else f"recbook @ {source}"


def install_cell_source(extras=DEFAULT_EXTRAS) -> str:
    """The exact source of a notebook's Colab set-up cell: on Colab it pip-installs the release (Colab's own torch
    stays: recbook asks only for lower bounds); anywhere else it does nothing."""
    return f'''# NBVAL_IGNORE_OUTPUT
{INSTALL_CELL_MARKER} installs recbook (pinned to the course release {TAG}) on Colab; does nothing elsewhere.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q",
                           "{install_spec(extras)}"])
else:
    print("Not on Colab: using the recbook installed by `make setup`.")'''
