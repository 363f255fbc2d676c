"""Rewrite every notebook's Colab badge and Colab set-up cell, and README.md's Colab links, from recbook_course/release.py.

    python tools/release_cells.py            # rewrite notebooks/*.ipynb and README.md where they differ
    python tools/release_cells.py --check    # exit 1 (listing what differs) instead of writing

The badge opens the **student** version of the notebook at the release tag; the set-up cell pip-installs
``recbook[extras] @ git+<repository>@<tag>`` on Colab. Only those two cells' sources change: outputs, execution
counts and metadata stay as they are. ``make student`` then carries them into student/.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from recbook_course import release

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)\s]*\)\]\([^)\s]*\)")
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]*?/([^/)\s]+)\.ipynb")


def notebook_paths(folder: Path = NOTEBOOKS) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]*.ipynb"))


def install_cells(nb) -> list[int]:
    """Indices of the notebook's Colab set-up cells (code cells with the marker comment)."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and release.INSTALL_CELL_MARKER in c.source]


def badge_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and BADGE.search(c.source)]


def expected_cells(name: str) -> tuple[str, str]:
    """(badge markdown, set-up cell source) that recbook_course.release generates for notebook ``name``."""
    return release.badge_markdown(name), release.install_cell_source(release.extras_for(name))


def update_notebook(nb, name: str) -> list[str]:
    """Set the notebook's badge and set-up cell from recbook_course.release, in place; return what changed.

    Raises ValueError unless the notebook has exactly one badge and exactly one set-up cell."""
    badges, setups = badge_cells(nb), install_cells(nb)
    if len(badges) != 1 or sum(len(BADGE.findall(nb.cells[i].source)) for i in badges) != 1:
        raise ValueError(f"{name}: expected exactly one 'Open In Colab' badge, found it in cells {badges}")
    if len(setups) != 1:
        raise ValueError(f"{name}: expected exactly one Colab set-up cell ({release.INSTALL_CELL_MARKER!r}), found {setups}")
    badge, setup = expected_cells(name)
    changed = []
    cell = nb.cells[badges[0]]
    source = BADGE.sub(lambda m: badge, cell.source)
    if source != cell.source:
        cell.source = source
        changed.append(f"badge (cell {badges[0]})")
    cell = nb.cells[setups[0]]
    if cell.source != setup:
        cell.source = setup
        changed.append(f"Colab set-up (cell {setups[0]})")
    return changed


def update_readme_text(text: str) -> str:
    """README.md with every Colab link pointing at the release's student version of its notebook."""
    return COLAB_LINK.sub(lambda m: release.colab_url(m.group(1)), text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a notebook or README.md differs")
    parser.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of the notebooks (default: notebooks/)")
    parser.add_argument("--readme", default=str(README), help="README to update ('' for none)")
    args = parser.parse_args(argv)
    stale = []
    for path in notebook_paths(Path(args.notebooks)):
        nb = nbformat.read(path, as_version=4)
        changed = update_notebook(nb, path.stem)
        if changed:
            stale.append(f"{path.name}: {', '.join(changed)}")
            if not args.check:
                nbformat.write(nb, path)
    if args.readme:
        readme = Path(args.readme)
        text = readme.read_text()
        new = update_readme_text(text)
        if new != text:
            stale.append(f"{readme.name}: Colab links")
            if not args.check:
                readme.write_text(new)
    for line in stale:
        print(("differs from recbook_course/release.py: " if args.check else "updated: ") + line)
    if not stale:
        print(f"badges, Colab set-up cells and README links match the release {release.REPO}@{release.TAG}")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
