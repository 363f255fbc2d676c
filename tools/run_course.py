"""Run the course: execute every notebook headless, store its outputs, print what each measured.

    python tools/run_course.py                 # all notebooks, in course order
    python tools/run_course.py 01 02           # only notebooks whose name starts with 01 or 02
    RECBOOK_PROFILE=full python tools/run_course.py

Each notebook is executed in ``notebooks/`` with nbclient and written back *with its outputs*
(so it renders on GitHub), figures go to ``figures/``, and every value a notebook passed to
``recbook_course.record.record`` is collected into the summary printed at the end. A notebook that
fails — an error in a cell, a cell over the per-cell ``--timeout`` (``TIMEOUT``), a dead kernel,
anything else nbclient raises — stops nothing else: the summary says which one failed, in which cell
and why, the runner goes on with the next notebook, and the exit code is 1. A failed notebook is
written back too, showing where it stopped: the error in the failing cell, later cells without outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDENT = ROOT / "student"  # the student versions (tools/make_student_versions.py), rewritten for every notebook run


# Stored outputs are read on GitHub and in the website: no local paths a reader cannot use, no library noise.
_NOISE = re.compile(r"(Failed to load .*torchao.*|.*torch/utils/_pytree\.py:\d+\].*|.*USDT.*|.*\(raylet\).*ServeController\.graceful_shutdown failed.*"
                    r"|Token authentication is enabled for this Ray cluster.*)\n?")


def _path_replacements() -> list[tuple[str, str]]:
    import site
    import sysconfig

    pairs = [(p, "<site-packages>") for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if p]
    pairs += [(str(ROOT), "<repo>"), (str(ROOT.parent), "<repo>/.."), (tempfile.gettempdir().rstrip("/") + "/", "<tmp>/"),
              (str(Path.home()), "~")]
    return sorted(pairs, key=lambda pair: -len(pair[0]))  # the most specific prefix first


def clean_text(text: str, replacements: list[tuple[str, str]] | None = None) -> str:
    """``text`` without library noise lines and with local absolute paths replaced by placeholders."""
    text = _NOISE.sub("", text)
    for old, new in replacements or _path_replacements():
        text = text.replace(old, new)
    text = re.sub(r"[^\s'\"]*/site-packages", "<site-packages>", text)  # a venv reached through a symlink
    return text


_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def progress_text(widget_state: dict, model_id: str) -> str | None:
    """The final text of a tqdm progress bar from the widget state nbclient stores (``None`` if not a tqdm bar).

    A tqdm bar in a notebook is an ipywidgets HBox (description, FloatProgress, counts); its ``text/plain``
    fallback is the bar as it looked when first displayed — 0% — so a stored notebook would show every bar
    frozen at 0%. The widget state holds where the bar ended."""
    import html

    box = widget_state.get(model_id, {}).get("state", {})
    children = [widget_state.get(str(c).removeprefix("IPY_MODEL_"), {}).get("state", {}) for c in box.get("children", [])]
    if len(children) != 3 or children[1].get("_model_name") != "FloatProgressModel":
        return None
    desc, counts = (html.unescape(str(children[i].get("value", ""))).replace("\u2007", " ").replace("\xa0", " ").strip() for i in (0, 2))
    value, total = float(children[1].get("value") or 0), float(children[1].get("max") or 0)
    filled = int(10 * value / total) if total else 0
    return f"{desc}|{'█' * filled}{' ' * (10 - filled)}| {counts}"


def clean_outputs(nb) -> int:
    """Clean every stored output of ``nb`` in place (see :func:`clean_text`); return how many outputs changed.

    Progress bars stored as widgets get the text of their final state (see :func:`progress_text`)."""
    replacements, changed = _path_replacements(), 0
    widget_state = (nb.metadata.get("widgets") or {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            before = json.dumps(out, sort_keys=True)
            if out.get("output_type") == "stream":
                out["text"] = clean_text(out["text"], replacements)
                if not out["text"].strip():
                    changed += 1
                    continue
            view = (out.get("data") or {}).get(_WIDGET_VIEW)
            final = progress_text(widget_state, view.get("model_id", "")) if isinstance(view, dict) else None
            if final is not None:
                out["data"]["text/plain"] = final
            for key, value in (out.get("data") or {}).items():
                if isinstance(value, str) and key.startswith("text/"):
                    out["data"][key] = clean_text(value, replacements)
            if "traceback" in out:
                out["traceback"] = [clean_text(line, replacements) for line in out["traceback"]]
            if "evalue" in out:
                out["evalue"] = clean_text(out["evalue"], replacements)
            after = json.dumps(out, sort_keys=True)
            changed += before != after
            kept.append(out)
        cell.outputs = kept
    return changed


def _cell_label(nb, index: int | None) -> str:
    """``cell 12 (`table = run_benchmark(…)`)``: the cell's index and its first line of code."""
    if index is None:
        return "before the first cell (kernel start)"
    lines = [ln.strip() for ln in nb.cells[index].source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    first = lines[0] if lines else ""
    return f"cell {index}" + (f" (`{first[:60]}{'…' if len(first) > 60 else ''}`)" if first else "")


def _one_line(text, limit: int = 200, first: bool = False) -> str:
    """The last (or first) non-empty line of an exception's message — a traceback ends with ``ename: evalue``."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[0 if first else -1] if lines else "")[:limit]


def _mark_failure(nb, index: int | None, ename: str, evalue: str) -> None:
    """Show in the stored notebook where it stopped: an error output in the failing cell (unless nbclient wrote
    one), and no outputs below it — they would be stale outputs of an earlier run."""
    if index is None:
        return
    cell = nb.cells[index]
    if cell.cell_type == "code" and not any(o.get("output_type") == "error" for o in cell.outputs):
        cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))
    for later in nb.cells[index + 1 :]:
        if later.cell_type == "code":
            later.outputs, later.execution_count = [], None


def _busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have used since boot (``/proc/stat``); None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds this runner and its finished children (the notebook kernels and what they started) have used."""
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


LATEST_RUN = re.compile(r"\b\d+ s in the latest run")


def sync_time_line(nb, seconds: float) -> bool:
    """Rewrite the "N s in the latest run" of the notebook's first (title) cell to this run's ``seconds``, so a
    notebook's time line never carries a number typed by hand; True when something changed."""
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        return False
    new = LATEST_RUN.sub(f"{round(seconds)} s in the latest run", nb.cells[0].source)
    changed = new != nb.cells[0].source
    nb.cells[0].source = new
    return changed


def run_notebook(path: Path, timeout: int, environment: dict | None = None) -> tuple[float, list[dict], str, str | None]:
    """Execute one notebook in place; return (seconds, records, status, one-line error or None).

    ``status`` is ``"ok"``, ``"TIMEOUT"`` (a cell ran past ``timeout`` seconds) or ``"FAILED"`` (an error in
    a cell, a dead kernel, or anything else the execution raised); the error names the cell. The notebook's
    metadata keeps what this run measured (``recbook.run``: seconds, status, date, ``other_cpu`` — the share of the
    machine's CPU time that *other* processes used while it ran, so a timing taken on a busy machine is marked —
    and ``environment``; ``recbook.records``), from which ``tools/results_table.py`` writes the README's results table.
    """
    from recbook_course.record import RESULTS_ENV, read_records

    nb = nbformat.read(path, as_version=4)
    current: dict = {"index": None}

    def on_cell_start(cell, cell_index):
        current["index"] = cell_index

    status, error = "ok", None
    busy_before, own_before = _busy_seconds(), _own_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        os.environ[RESULTS_ENV] = str(results)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                                on_cell_start=on_cell_start)
        start = time.perf_counter()
        try:
            client.execute()
        except CellTimeoutError:
            status, ename, reason = "TIMEOUT", "CellTimeoutError", f"ran past the {timeout} s cell timeout"
        except DeadKernelError as exc:
            status, ename, reason = "FAILED", "DeadKernelError", f"the kernel died ({_one_line(exc, 120, first=True) or 'no message'})"
        except CellExecutionError as exc:
            status, ename, reason = "FAILED", "CellExecutionError", _one_line(exc, 300)
        except Exception as exc:  # anything else nbclient or the kernel machinery raises: report it, go on
            status, ename, reason = "FAILED", type(exc).__name__, f"{type(exc).__name__}: {_one_line(exc, 200)}"
        finally:
            seconds = time.perf_counter() - start
            os.environ.pop(RESULTS_ENV, None)
        if status != "ok":
            error = f"{_cell_label(nb, current['index'])}: {reason}"
            _mark_failure(nb, current["index"], ename, reason)
        records = read_records(results)
    busy_after, own_after = _busy_seconds(), _own_seconds()  # the kernel has exited and been reaped by now
    other_cpu = None
    if busy_before is not None and busy_after is not None and seconds > 0:
        others = max(0.0, (busy_after - busy_before) - (own_after - own_before))
        other_cpu = round(others / (seconds * (os.cpu_count() or 1)), 3)
    clean_outputs(nb)
    stored = round(seconds, 1)  # the line and the metadata from one value, so they never round apart (138.53 → 139, 138.5 → 138)
    if status == "ok":
        sync_time_line(nb, stored)
    nb.metadata["recbook"] = {
        "run": {"seconds": stored, "status": status, "error": error,
                "date": time.strftime("%Y-%m-%d", time.gmtime()),
                "other_cpu": other_cpu,
                "environment": {k: str(v) for k, v in (environment or {}).items()}},
        "records": records,
    }
    nbformat.write(nb, path)
    return seconds, records, status, error


def refresh_student(paths) -> None:
    """Rewrite the student version of every notebook just run (the run rewrote its time line and outputs), so that
    ``make course`` followed by ``make test`` finds ``student/`` in step with ``notebooks/``."""
    if not STUDENT.is_dir():
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_student_versions import student_version

    for path in paths:
        nb, _ = student_version(nbformat.read(path, as_version=4))
        nbformat.write(nb, STUDENT / path.name)
    print(f"student/: {len(paths)} student version(s) rewritten from the notebooks just run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefixes", nargs="*", help="run only notebooks whose file name starts with one of these")
    # 1800: notebook 18's section 4 (seven update strategies × three seeds) is one cell of about 700 s on a quiet 2-core CPU;
    # a slower or busier machine must not fail the course on it (it timed out at 900 s on a busy one)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
    parser.add_argument("--clean-only", action="store_true",
                        help="do not execute: only remove local paths and library noise from the stored outputs")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]*.ipynb"))
    if args.prefixes:
        paths = [p for p in paths if any(p.name.startswith(x) for x in args.prefixes)]
    if not paths:
        print(f"no notebooks matched {args.prefixes} in {NOTEBOOKS}", file=sys.stderr)
        return 2
    if args.clean_only:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            changed = clean_outputs(nb)
            nbformat.write(nb, path)
            print(f"{path.name}: {changed} output(s) cleaned")
        return 0

    from recbook.perf.device import environment_report, format_report

    environment = environment_report()
    print(format_report(environment))
    print()
    summary = []
    for path in paths:
        print(f"▶ {path.name} ...", flush=True)
        seconds, records, status, error = run_notebook(path, args.timeout, environment)
        print(f"  {status} in {seconds:.1f} s" + (f": {error}" if error else ""), flush=True)
        summary.append((path.name, seconds, records, status, error))

    print("\n# Course summary\n")
    print("| notebook | time (s) | status | measured |\n|---|---:|---|---|")
    for name, seconds, records, status, error in summary:
        measured = "; ".join(f"{r['name']} = {r['value']}{(' ' + r['unit']) if r['unit'] else ''}" for r in records) or "—"
        if error:
            measured = f"{status}: {error}" + (f"; before that: {measured}" if records else "")
        print(f"| {name} | {seconds:.1f} | {status} | {measured.replace('|', '/')} |")
    refresh_student(paths)
    total = sum(s for _, s, *_ in summary)
    failed = [name for name, _, _, status, _ in summary if status != "ok"]
    print(f"\nTotal: {total:.1f} s for {len(summary)} notebooks; executed notebooks are in notebooks/, figures in figures/.")
    if failed:
        print(f"{len(failed)} of {len(summary)} notebooks did not finish: {', '.join(failed)}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import results_table

    if NOTEBOOKS == ROOT / "notebooks" and results_table.update_readme():
        print("README.md: results table regenerated from the notebooks' stored run metadata")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
