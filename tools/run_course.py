"""Run the course: execute every notebook headless, store its outputs, print what each measured.

    python tools/run_course.py                 # all notebooks, in course order
    python tools/run_course.py 01 02           # only notebooks whose name starts with 01 or 02
    RECBOOK_PROFILE=full python tools/run_course.py

Each notebook is executed in ``notebooks/`` with nbclient and written back *with its outputs*
(so it renders on GitHub), figures go to ``figures/``, and every value a notebook passed to
``recbook.course.record`` is collected into the summary printed at the end. A notebook that
fails stops nothing else: the summary says which one failed and why, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def run_notebook(path: Path, timeout: int) -> tuple[float, list[dict], str | None]:
    """Execute one notebook in place; return (seconds, records, error or None)."""
    from recbook.course import RESULTS_ENV, read_records

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        os.environ[RESULTS_ENV] = str(results)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        error = None
        try:
            client.execute()
        except CellExecutionError as exc:
            error = str(exc).strip().splitlines()[-1][:300]
        seconds = time.perf_counter() - start
        records = read_records(results)
        del os.environ[RESULTS_ENV]
    nbformat.write(nb, path)
    return seconds, records, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefixes", nargs="*", help="run only notebooks whose file name starts with one of these")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default 900)")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]*.ipynb"))
    if args.prefixes:
        paths = [p for p in paths if any(p.name.startswith(x) for x in args.prefixes)]
    if not paths:
        print(f"no notebooks matched {args.prefixes} in {NOTEBOOKS}", file=sys.stderr)
        return 2

    from recbook.device import environment_report, format_report

    print(format_report(environment_report()))
    print()
    summary = []
    for path in paths:
        print(f"▶ {path.name} ...", flush=True)
        seconds, records, error = run_notebook(path, args.timeout)
        status = "FAILED" if error else "ok"
        print(f"  {status} in {seconds:.1f} s" + (f": {error}" if error else ""), flush=True)
        summary.append((path.name, seconds, records, error))

    print("\n# Course summary\n")
    print(f"| notebook | time (s) | status | measured |\n|---|---:|---|---|")
    for name, seconds, records, error in summary:
        measured = "; ".join(f"{r['name']} = {r['value']}{(' ' + r['unit']) if r['unit'] else ''}" for r in records) or "—"
        print(f"| {name} | {seconds:.1f} | {'FAILED' if error else 'ok'} | {measured} |")
    total = sum(s for _, s, _, _ in summary)
    print(f"\nTotal: {total:.1f} s for {len(summary)} notebooks; executed notebooks are in notebooks/, figures in figures/.")
    return 1 if any(e for *_, e in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
