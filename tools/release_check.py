"""Check the release the way Colab will meet it: build, install the wheel in a clean environment, run notebooks.

    python tools/release_check.py [--notebooks 00 01] [--keep] [--timeout 600]     (make release-check)

1. builds the sdist and the wheel (``python -m build``) from a copy of the working tree's files (tracked, or
   untracked and not ignored: no .venv, no caches, no MovieLens copy), in a temporary folder;
2. checks what they contain: the wheel only the ``recbook`` and ``recbook_course`` packages and their metadata, neither any notebook nor any
   MovieLens file;
3. creates a clean virtual environment and installs, as Colab's own environment, ``torch`` (``--torch``, default
   2.13.0) and the kernel tools (``nbclient``, ``ipykernel``) — then the wheel the way each notebook's Colab cell
   installs it (``pip install -q "recbook[extras] @ <wheel>"``, recbook_course/release.py's ``install_spec``): only the lower
   bounds of our metadata, never constraints.txt; ``pip check`` must pass;
4. executes the notebooks (the solutions in notebooks/, default 00 and 01) with that environment's kernel, in a
   scratch folder with its own HOME and cache (a fresh machine), and reports pass/fail and the time of each step.

Exit code 0 when every step passed. Nothing in the repository is written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from recbook_course import release  # noqa: E402  (the checkout's release definition, whichever recbook is installed)

MOVIELENS = re.compile(r"(^|/)(ml-100k(\.zip)?|u\.(data|item|user|base|test|info|genre|occupation)|ua\.(base|test)|ub\.(base|test))(/|$)")
# Run inside the clean environment: execute one notebook with nbclient, print a JSON line with the result.
RUNNER = r"""
import json, sys, time, traceback
import nbformat
from nbclient import NotebookClient
path, workdir, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
nb = nbformat.read(path, as_version=4)
start = time.perf_counter()
result = {"notebook": path, "ok": True, "error": None}
from jupyter_client.kernelspec import KernelSpecManager
import shutil
argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
result["kernel_python"] = shutil.which(argv0) or argv0  # must be the clean environment's python
try:
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": workdir}}).execute()
except Exception as exc:  # CellExecutionError, CellTimeoutError, DeadKernelError: reported, not raised
    result.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[-2000:]}")
result["seconds"] = round(time.perf_counter() - start, 1)
result["cells"] = sum(c.cell_type == "code" for c in nb.cells)
nbformat.write(nb, path)
print("RESULT " + json.dumps(result))
"""


class Step:
    """Times a step, records its result; ``fail`` marks it failed with a reason."""

    def __init__(self, report: list, name: str):
        self.report, self.name, self.ok, self.detail = report, name, True, ""

    def __enter__(self):
        print(f"--- {self.name} ...", flush=True)
        self.start = time.perf_counter()
        return self

    def fail(self, detail: str):
        self.ok, self.detail = False, detail

    def __exit__(self, kind, exc, tb):
        if exc is not None:
            self.fail(f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - self.start
        self.report.append({"step": self.name, "ok": self.ok, "seconds": round(seconds, 1), "detail": self.detail})
        print(f"    {'ok' if self.ok else 'FAILED'} in {seconds:.0f} s{': ' + self.detail if self.detail else ''}", flush=True)
        return exc is not None and isinstance(exc, (subprocess.CalledProcessError, RuntimeError, ValueError, OSError))


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, echoing it; raise RuntimeError with the end of its output when it fails."""
    print("    $ " + " ".join(str(c) for c in cmd), flush=True)
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {(proc.stdout + proc.stderr)[-3000:]}")
    return proc


def source_files(root: Path) -> list[str]:
    """The working tree's files that a release is built from: tracked, or untracked and not ignored."""
    out = run(["git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard", "-z"]).stdout
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


def copy_tree(root: Path, dest: Path) -> int:
    files = source_files(root)
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return len(files)


def check_artifacts(wheel: Path, sdist: Path) -> list[str]:
    """What should not be in the release: a list of problems (empty when the wheel and sdist are as intended)."""
    problems = []
    with zipfile.ZipFile(wheel) as zf:
        wheel_names = zf.namelist()
    with tarfile.open(sdist) as tf:
        sdist_names = [n.split("/", 1)[1] if "/" in n else n for n in tf.getnames()]
    dist_info = re.compile(r"^recbook-[^/]+\.dist-info/")
    for name in wheel_names:
        if not (name.startswith(("recbook/", "recbook_course/")) or dist_info.match(name)):
            problems.append(f"wheel: {name} is outside the recbook and recbook_course packages")
    for where, names in (("wheel", wheel_names), ("sdist", sdist_names)):
        for name in names:
            if MOVIELENS.search(name):
                problems.append(f"{where}: {name} looks like MovieLens data (not redistributable)")
            if name.endswith(".ipynb"):
                problems.append(f"{where}: {name} is a notebook (the course's notebooks are not part of the package)")
            if re.search(r"^(\.venv|\.cache|runs|figures|student|notebooks|classroom)/|(^|/)(\.venv|\.cache)/", name):
                problems.append(f"{where}: {name} is not meant to be released (classroom/ holds the hidden tests)")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebooks", nargs="+", default=["00", "01"], help="notebook name prefixes (default: 00 01)")
    parser.add_argument("--torch", default="2.13.0", help="the torch version standing in for Colab's own (default 2.13.0)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per notebook cell (default 600)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (wheel, venv, executed notebooks)")
    parser.add_argument("--json", help="also write the report to this JSON file")
    args = parser.parse_args(argv)

    notebooks = []
    for prefix in args.notebooks:
        found = sorted((ROOT / "notebooks").glob(f"{prefix}*.ipynb"))
        if len(found) != 1:
            parser.error(f"--notebooks {prefix}: expected one notebook, found {[p.name for p in found]}")
        notebooks.append(found[0])

    total_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="recbook-release-check-"))
    print(f"release {release.REPO}@{release.TAG}; working folder {tmp}", flush=True)
    report: list[dict] = []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_CONSTRAINT", "PIP_REQUIREMENT", "VIRTUAL_ENV")}
    if env.get("RECBOOK_MOVIELENS_DIR"):  # the Makefile's is relative to the repository; the notebooks run elsewhere
        env["RECBOOK_MOVIELENS_DIR"] = str((ROOT / env["RECBOOK_MOVIELENS_DIR"]).resolve())
    try:
        src, dist, venv, work = tmp / "src", tmp / "dist", tmp / "venv", tmp / "work"
        wheel = sdist = None
        with Step(report, "build sdist and wheel (python -m build)") as step:
            n = copy_tree(ROOT, src)
            run([sys.executable, "-m", "build", "--outdir", dist, src], env=env)
            wheel, sdist = next(dist.glob("recbook-*.whl")), next(dist.glob("recbook-*.tar.gz"))
            step.detail = f"{n} files copied; {wheel.name} ({wheel.stat().st_size / 1e3:.0f} kB), {sdist.name} ({sdist.stat().st_size / 1e3:.0f} kB)"
        if not report[-1]["ok"]:
            return finish(report, total_start, tmp, args)

        with Step(report, "contents of the wheel and sdist") as step:
            problems = check_artifacts(wheel, sdist)
            if problems:
                step.fail("; ".join(problems[:10]) + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""))
            else:
                with zipfile.ZipFile(wheel) as zf:
                    step.detail = f"wheel: {len(zf.namelist())} files, all recbook/ or its dist-info; no notebook, no MovieLens file"

        python = venv / "bin" / "python"
        with Step(report, f"clean venv with Colab's own: torch=={args.torch}, nbclient, ipykernel") as step:
            run([sys.executable, "-m", "venv", venv], env=env)
            run([python, "-m", "pip", "install", "-q", f"torch=={args.torch}", "nbclient", "ipykernel"], env=env)
        if not report[-1]["ok"]:
            return finish(report, total_start, tmp, args)

        specs = []  # one install per distinct Colab cell, in notebook order
        for path in notebooks:
            spec = release.install_spec(release.extras_for(path.stem), source=wheel.resolve().as_uri())
            if spec not in specs:
                specs.append(spec)
        with Step(report, "install the wheel as the Colab cell does: " + " ; ".join(s.split(" @ ")[0] for s in specs)) as step:
            for spec in specs:
                run([python, "-m", "pip", "install", "-q", spec], env=env)
            run([python, "-m", "pip", "check"], env=env)
            versions = {p["name"].lower(): p["version"] for p in json.loads(run([python, "-m", "pip", "list", "--format", "json"], env=env).stdout)}
            step.detail = ", ".join(f"{k} {versions[k]}" for k in ("recbook", "torch", "transformers", "numpy", "pandas", "peft") if k in versions)
            where = run([python, "-c", "import recbook; print(recbook.__file__)"], cwd=tmp, env=env).stdout.strip()
            if not where.startswith(str(venv)):
                step.fail(f"recbook imported from {where}, not from the clean environment")
        if not report[-1]["ok"]:
            return finish(report, total_start, tmp, args)

        home = tmp / "home"
        home.mkdir()
        kernel_env = dict(env, HOME=str(home), RECBOOK_CACHE=str(home / ".cache" / "recbook"), JUPYTER_DATA_DIR=str(home / "jupyter"),
                          JUPYTER_CONFIG_DIR=str(home / "jupyter-config"), IPYTHONDIR=str(home / "ipython"),
                          MPLCONFIGDIR=str(home / "matplotlib"), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
        (tmp / "runner.py").write_text(RUNNER)
        for path in notebooks:
            with Step(report, f"execute {path.name}") as step:
                work.mkdir(exist_ok=True)
                copy = work / path.name
                shutil.copy2(path, copy)
                proc = subprocess.run([python, tmp / "runner.py", copy, work, str(args.timeout)], capture_output=True, text=True,
                                      cwd=work, env=kernel_env)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if not lines:
                    raise RuntimeError(f"the runner failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")
                result = json.loads(lines[-1][len("RESULT "):])
                step.detail = f"{result['cells']} code cells, {result['seconds']} s in the kernel"
                if not result["ok"]:
                    step.fail(result["error"])
                elif not str(result["kernel_python"]).startswith(str(venv)):
                    step.fail(f"the kernel ran {result['kernel_python']}, not the clean environment's python")
        return finish(report, total_start, tmp, args)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def finish(report, total_start, tmp, args) -> int:
    seconds = time.perf_counter() - total_start
    ok = bool(report) and all(r["ok"] for r in report)
    print(f"\n# release check of {release.REPO}@{release.TAG}: {'PASSED' if ok else 'FAILED'} in {seconds:.0f} s")
    for r in report:
        print(f"- {'ok    ' if r['ok'] else 'FAILED'} {r['seconds']:6.0f} s  {r['step']}" + (f"\n      {r['detail']}" if r["detail"] else ""))
    if args.keep:
        print(f"kept: {tmp}")
    if args.json:
        Path(args.json).write_text(json.dumps({"ok": ok, "seconds": round(seconds, 1), "release": release.TAG, "steps": report}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
