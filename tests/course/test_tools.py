"""The course-maintenance tools: student versions and the course runner's notebook discovery."""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from tests.helpers import load_tool

ROOT = Path(__file__).resolve().parents[2]


load = load_tool  # tools/<name>.py as a module


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


def test_course_runner_reports_a_timeout_and_goes_on(tmp_path, monkeypatch, capsys):
    """A cell past the timeout, a dead kernel and a cell error are each reported in the summary (naming the cell),
    the other notebooks still run, and the exit code is 1 — faked, no kernel is started."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from recbook.perf import device
    from recbook_course.record import record

    runner = load("run_course")
    v4 = nbformat.v4
    for name, code in (("01_good", ["x = 1", "RECORD"]), ("02_slow", ["x = 1", "# NBVAL_IGNORE_OUTPUT\nbenchmark()", "after()"]),
                       ("03_dead", ["CRASH"]), ("04_error", ["RAISE"]), ("05_good", ["RECORD"])):
        nb = v4.new_notebook(cells=[v4.new_markdown_cell("# title")] + [v4.new_code_cell(c) for c in code])
        nb.cells[-1].outputs = [v4.new_output("stream", text="stale output of an earlier run\n")]
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    executed = []

    def fake_execute(self, **kwargs):
        executed.append(self.nb.cells[0].source)
        for index, cell in enumerate(self.nb.cells):
            self.on_cell_start(cell=cell, cell_index=index)
            if cell.cell_type != "code":
                continue
            if "benchmark()" in cell.source:
                raise CellTimeoutError.error_from_timeout_and_cell("Cell execution timed out", self.timeout, cell)
            if cell.source == "CRASH":
                raise DeadKernelError("Kernel died")
            if cell.source == "RAISE":
                raise CellExecutionError("Traceback (most recent call last):\nValueError: boom", "ValueError", "boom")
            if cell.source == "RECORD":
                record("fake value", 1.5, "x")
            cell.execution_count, cell.outputs = index, []
        return self.nb

    monkeypatch.setattr(NotebookClient, "execute", fake_execute)
    monkeypatch.setattr(runner, "NOTEBOOKS", tmp_path)
    monkeypatch.setattr(runner, "STUDENT", tmp_path / "student")
    (tmp_path / "student").mkdir()
    monkeypatch.setattr(device, "environment_report", lambda *a, **k: {})
    monkeypatch.setattr(device, "format_report", lambda report: "(environment)")
    code = runner.main(["--timeout", "7"])
    out = capsys.readouterr().out
    assert code == 1
    assert len(executed) == 5  # every notebook ran: none stopped the runner
    summary = out[out.index("# Course summary"):]
    rows = {line.split(" | ")[0].strip("| "): line for line in summary.splitlines() if line.startswith("| 0")}
    assert list(rows) == ["01_good.ipynb", "02_slow.ipynb", "03_dead.ipynb", "04_error.ipynb", "05_good.ipynb"]
    assert "| ok | fake value = 1.5 x |" in rows["01_good.ipynb"] and "| ok |" in rows["05_good.ipynb"]
    assert rows["02_slow.ipynb"].endswith("| TIMEOUT | TIMEOUT: cell 2 (`benchmark()`): ran past the 7 s cell timeout |")
    assert rows["03_dead.ipynb"].endswith("| FAILED | FAILED: cell 1 (`CRASH`): the kernel died (Kernel died) |")
    assert rows["04_error.ipynb"].endswith("| FAILED | FAILED: cell 1 (`RAISE`): ValueError: boom |")
    assert "  TIMEOUT in " in out and "02_slow.ipynb ..." in out  # reported as it happens, too
    assert "3 of 5 notebooks did not finish: 02_slow.ipynb, 03_dead.ipynb, 04_error.ipynb" in summary
    assert "Traceback" not in out
    slow = nbformat.read(tmp_path / "02_slow.ipynb", as_version=4)  # written back showing where it stopped
    assert slow.cells[2].outputs[-1]["output_type"] == "error" and slow.cells[2].outputs[-1]["ename"] == "CellTimeoutError"
    assert slow.cells[3].outputs == [] and slow.cells[3].execution_count is None  # no stale output below the failure
    good = nbformat.read(tmp_path / "01_good.ipynb", as_version=4).metadata["recbook"]  # what the README table is built from
    assert good["run"]["status"] == "ok" and good["records"] == [{"name": "fake value", "value": 1.5, "unit": "x"}]
    assert good["run"]["other_cpu"] is None or 0 <= good["run"]["other_cpu"]
    assert slow.metadata["recbook"]["run"]["status"] == "TIMEOUT" and "cell 2" in slow.metadata["recbook"]["run"]["error"]
    assert runner.main(["01", "05"]) == 0
    # make course, then make test: the student versions follow the notebooks just run (their time lines changed)
    student = load("make_student_versions")
    for name in ("01_good", "05_good"):
        want, _ = student.student_version(nbformat.read(tmp_path / f"{name}.ipynb", as_version=4))
        assert nbformat.read(tmp_path / "student" / f"{name}.ipynb", as_version=4) == want


def test_clean_text_removes_paths_and_noise():
    runner = load("run_course")
    reps = [("/home/u/proj", "<repo>"), ("/tmp/", "<tmp>/")]
    noisy = ("Failed to load /x/site-packages/torchao/_C.so: Could not load this library\n"
             "W1129 12:00:00.1 1 torch/utils/_pytree.py:630] <enum 'X'> is an Enum subclass\n"
             "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.\n"
             "\x1b[33m(raylet)\x1b[0m Task ServeController.graceful_shutdown failed. There are infinite retries remaining\n"
             "saved to /home/u/proj/figures/a.png and /tmp/run/x\nfrom /opt/venv/lib/python3.11/site-packages/peft/m.py\n")
    assert runner.clean_text(noisy, reps) == "saved to <repo>/figures/a.png and <tmp>/run/x\nfrom <site-packages>/peft/m.py\n"


def test_stored_outputs_carry_no_local_paths_or_library_noise():
    import tempfile

    bad = [str(ROOT), str(ROOT.parent) + "/", tempfile.gettempdir() + "/", "site-packages/", str(Path.home()) + "/",
           "Failed to load", "_pytree.py"]
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            text = "\n".join(str(o) for o in cell.outputs)
            found = [b for b in bad if b in text] + re.findall(r"(?<![0-9])0%\|[^|]*\| 0/[1-9]", text)
            assert not found, f"{path.name}, code cell {i}: stored output contains {found}; run tools/run_course.py --clean-only"


def test_progress_bars_are_stored_at_their_final_state():
    runner = load("run_course")
    import nbformat

    state = {
        "box": {"state": {"children": ["IPY_MODEL_d", "IPY_MODEL_p", "IPY_MODEL_c"]}},
        "d": {"state": {"_model_name": "HTMLModel", "value": "train:\u2007100%"}},
        "p": {"state": {"_model_name": "FloatProgressModel", "value": 60.0, "max": 60.0}},
        "c": {"state": {"_model_name": "HTMLModel", "value": "60/60\u2007[00:10&lt;00:00,\u20076.0it/s]"}},
    }
    assert runner.progress_text(state, "box") == "train: 100%|██████████| 60/60 [00:10<00:00, 6.0it/s]"
    assert runner.progress_text(state, "missing") is None
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}})
    frozen = nbformat.v4.new_output("display_data", data={"text/plain": "train:   0%|          | 0/60 [00:00<?, ?it/s]",
                                                          runner._WIDGET_VIEW: {"model_id": "box"}})
    nb.cells.append(nbformat.v4.new_code_cell("train()", outputs=[frozen]))
    assert runner.clean_outputs(nb) == 1
    assert nb.cells[0].outputs[0]["data"]["text/plain"].startswith("train: 100%|")


def test_gpu_check_reports_each_check_and_fails_on_any(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", Path(__file__).resolve().parents[2] / "tools" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)

    def boom():
        raise RuntimeError("nccl said no")

    report, failed = gpu_check.run_checks({"fine": lambda: {"x": 1}, "raises": boom, "says_failed": lambda: {"ok": False, "why": "exit 3"}})
    lines = capsys.readouterr().out.splitlines()
    assert failed == ["raises", "says_failed"] and report["fine"] == {"x": 1}
    assert [line.split()[0] for line in lines] == ["fine", "raises", "says_failed"]  # one line per check, all of them run
    assert " ok " in lines[0] and "FAILED: RuntimeError: nccl said no" in lines[1] and "FAILED: exit 3" in lines[2]


def test_results_table_is_built_from_run_metadata(tmp_path):
    table = load("results_table")
    env = {"cpu": "Test CPU", "cpu_count": "2", "cpu_features": "AVX2", "device": "cpu", "torch": "2.13.0", "profile": "quick"}
    for name, run, records in (
        ("01_demo", {"seconds": 12.34, "status": "ok", "date": "2026-11-30", "other_cpu": 0.02, "environment": env},
         [{"name": "01 speed-up", "value": 2.3456, "unit": "×"}, {"name": "01 a|b", "value": "0.5 [0.4, 0.6]", "unit": ""}]),
        ("02_busy", {"seconds": 99, "status": "FAILED", "error": "cell 3: boom", "date": "2026-11-30", "other_cpu": 0.4,
                     "environment": env}, []),
        ("03_never", None, None),
    ):
        nb = nbformat.v4.new_notebook()
        if run:
            nb.metadata["recbook"] = {"run": run, "records": records}
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    text = table.build_table(tmp_path)
    assert "- **M1**: Test CPU (2 logical CPUs; AVX2), device cpu, torch 2.13.0, profile quick" in text
    assert "| 01_demo | 12 s | M1, 2026-11-30 | speed-up = 2.346 ×; a/b = 0.5 [0.4, 0.6] |" in text
    assert "| 02_busy | 99 s *(other processes used 40% of the CPU meanwhile: timings inflated)* | M1, 2026-11-30 | **FAILED**: cell 3: boom |" in text
    assert "| 03_never | — | — | not run" in text
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{table.BEGIN}\nold\n{table.END}\nrest\n")
    assert table.update_readme(readme, tmp_path, check=True) and "old" in readme.read_text()
    assert table.update_readme(readme, tmp_path) and not table.update_readme(readme, tmp_path)
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("\nrest\n")


def test_readme_results_table_matches_the_stored_notebooks():
    table = load("results_table")
    assert not table.update_readme(check=True), "README.md's results table is stale: run python tools/results_table.py"


def test_notebook_18_matches_its_source():
    source = load("nb18_source")
    stored = nbformat.read(ROOT / "notebooks" / "18_continual.ipynb", as_version=4)
    built = source.build()
    timed = re.compile(r"\b\d+ s in the latest run")  # the course runner rewrites this number after every run

    def cells(nb):
        return [(c.cell_type, timed.sub("N s in the latest run", c.source)) for c in nb.cells]

    assert cells(stored) == cells(built), \
        "notebooks/18_continual.ipynb differs from tools/nb18_source.py: edit the source, then run it and tools/run_course.py 18"


def test_readme_throughput_section_is_generated_from_the_benchmark_json(tmp_path):
    """The README's training-throughput numbers come from figures/bench_train_throughput.json, not from a keyboard."""
    import json

    tool = load("bench_train_throughput")
    report = json.loads((ROOT / "figures" / "bench_train_throughput.json").read_text())
    readme = (ROOT / "README.md").read_text()
    section = readme.split(tool.README_BEGIN, 1)[1].split(tool.README_END, 1)[0].strip()
    assert section == tool.readme_section(report).strip(), "run: python tools/bench_train_throughput.py --readme-only"
    assert f"{report['speedup_recbook_vs_seed']:.2f}×" in section and report["environment"]["cpu"] in section
    copy = tmp_path / "README.md"
    copy.write_text("intro\n" + tool.README_BEGIN + "\nstale 9.99×\n" + tool.README_END + "\nrest\n")
    tool.update_readme(report, copy)
    text = copy.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("rest\n") and section in text
    copy.write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        tool.update_readme(report, copy)


def test_time_lines_state_the_stored_run_time():
    """A notebook's "N s in the latest run" is the runner's, from the run whose outputs are stored, not a typed number."""
    import nbformat

    runner = load("run_course")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        found = runner.LATEST_RUN.search(nb.cells[0].source)
        if found:
            seconds = nb.metadata["recbook"]["run"]["seconds"]
            assert found.group(0) == f"{round(seconds)} s in the latest run", f"{path.name}: run tools/run_course.py"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("**Time:** (144 s in the latest run, alone)")])
    assert runner.sync_time_line(nb, 226.9) and nb.cells[0].source == "**Time:** (227 s in the latest run, alone)"
    assert not runner.sync_time_line(nb, 227.2)
    assert not runner.sync_time_line(nbformat.v4.new_notebook(), 10.0)
