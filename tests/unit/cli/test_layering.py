"""The command line is a thin layer over the library: light to import, one model registry, one-line errors (issue 11)."""

import json
import subprocess
import sys

import pytest

from helpers import exit_2_one_line
from recbook import cli

HEAVY = ("torch", "numpy", "pandas", "transformers", "recbook.compress.bench", "recbook.runs.recipe", "recbook.compress.prune",
         "recbook.compress.quantize")


def test_help_loads_neither_torch_nor_the_compression_code():
    script = (
        "import json, runpy, sys\n"
        "import recbook.cli\n"
        "recbook.cli.build_parser()\n"
        "for argv in (['--help'], ['train', '--help'], ['bench', '--help']):\n"
        "    sys.argv = ['recbook', *argv]\n"
        "    try:\n"
        "        runpy.run_module('recbook', run_name='__main__')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--variants" in done.stdout and "--model" in done.stdout  # the help texts were printed
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_one_model_registry():
    from recbook import models
    from recbook.runs import recipe as pipeline
    assert pipeline.MODEL_NAMES is models.MODEL_NAMES
    for name, spec in models.MODELS.items():
        cls = spec.load_class()
        assert isinstance(cls, type) and cls.model_type == name, name
    assert not models.model_class("cross-encoder").full_ranking and models.model_class("sasrec").full_ranking
    train = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    assert next(a for a in train._actions if a.dest == "model").choices == models.MODEL_NAMES
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        models.model_spec("gpt")


def test_no_model_kind_branches_in_the_commands():
    """Evaluation picks its path by protocol, never by the model's kind: no branch on a model's family in the pipeline
    or the command line (the registry and each model's config fields decide)."""
    import inspect
    import re

    from recbook.runs import recipe as pipeline

    for module in (pipeline, cli):
        source = inspect.getsource(module)
        assert not re.search(r"\.kind\b|BERT_MODELS|BASELINE_MODELS|SEQUENTIAL_MODELS", source), module.__name__


def test_check_out_folder(tmp_path):
    from recbook.cli.flags import check_out_folder
    from recbook.usage import UsageError

    (tmp_path / "file.txt").write_text("x")
    assert check_out_folder(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert check_out_folder(tmp_path) == tmp_path
    with pytest.raises(UsageError, match="is not a folder"):
        check_out_folder(tmp_path / "file.txt")
    with pytest.raises(UsageError, match="its parent .* is a file"):
        check_out_folder(tmp_path / "file.txt" / "run")


def test_out_that_is_a_file_exits_2_for_every_command_with_out(tmp_path, capsys):
    file = tmp_path / "taken.txt"
    file.write_text("not a folder")
    out = str(file)
    exit_2_one_line(["train", "--data", "synthetic", "--model", "pop", "--out", out, "--quiet"], capsys, "--out", "is not a folder")
    exit_2_one_line(["train", "--data", "synthetic", "--model", "pop", "--out", str(file / "sub"), "--quiet"], capsys, "is a file")
    exit_2_one_line(["bench", "--checkpoint", str(tmp_path), "--variants", "int8", "--out", out], capsys, "--out", "is not a folder")
    exit_2_one_line(["bench", "--target", "catalogue", "--variants", "int8", "--out", out], capsys, "--out", "is not a folder")
    exit_2_one_line(["export", "--retriever", str(tmp_path), "--out", out], capsys, "--out", "is not a folder")
    exit_2_one_line(["update", "--model", str(tmp_path), "--data", "synthetic-drift", "--until", "2021-01-01", "--strategy", "replay",
                     "--out", out], capsys, "--out", "is not a folder")
    assert {parser: next(a for a in sub._actions if a.dest == "out").required
            for parser, sub in cli.build_parser()._subparsers._group_actions[0].choices.items()
            if any(a.dest == "out" for a in sub._actions)} == {"train": True, "bench": True, "export": True, "update": True}  # checked above


def test_out_that_is_a_file_through_python_m_recbook(tmp_path):
    file = tmp_path / "taken.txt"
    file.write_text("x")
    done = subprocess.run([sys.executable, "-m", "recbook", "train", "--data", "synthetic", "--model", "pop", "--out", str(file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "error: --out" in done.stderr and "Traceback" not in done.stderr


def test_unknown_backbone_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    for backbone in (str(tmp_path / "no-such-model"), str(tmp_path / "empty")):
        exit_2_one_line(["train", "--data", "synthetic", "--model", "cross-encoder", "--backbone", backbone, "--out", str(tmp_path / "ce"),
                          "--quiet"], capsys, "--backbone", "no model found")
        exit_2_one_line(["train", "--data", "synthetic", "--model", "sasrec", "--item-features", "text", "--backbone", backbone,
                          "--out", str(tmp_path / "seq"), "--quiet"], capsys, "--backbone")
        exit_2_one_line(["bench", "--target", "catalogue", "--data", "synthetic", "--backbone", backbone, "--variants", "int8",
                          "--out", str(tmp_path / "bench")], capsys, "--backbone", "no model found")
    assert not (tmp_path / "ce").exists() and not (tmp_path / "bench").exists()  # refused before anything was written


@pytest.mark.parametrize("target", ["checkpoint", "catalogue"])
def test_bench_onnx_variant_without_onnxruntime_exits_2(target, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    argv = ["bench", "--target", target, "--variants", "int8,onnx-int8", "--out", str(tmp_path / "bench")]
    if target == "checkpoint":
        argv += ["--checkpoint", str(tmp_path / "run")]
    exit_2_one_line(argv, capsys, "onnx-int8", "onnxruntime", "not installed")
    assert not (tmp_path / "bench").exists()
    from recbook.compress.variants import missing_packages

    assert missing_packages(["fp32", "int8", "onnx-fp32"]) == {"onnx-fp32": ["onnxruntime"]}


def test_only_the_command_lines_name_flags_in_their_errors():
    """The library names a bad setting by its field (ConfigError(field=...)) or its value; naming the argument at fault by
    its ``--flag`` is the command lines' business (recbook/cli/, where recbook.cli.flags maps fields to flags). Outside
    cli/ no UsageError is raised with a flag in it and no error message starts with one; a hint that names a whole
    command to run (``python -m recbook train --model sasrec``) is advice, not the caller's flag, and may stay."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "recbook"
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                usage = getattr(node.exc.func, "id", getattr(node.exc.func, "attr", "")) == "UsageError"
                parts = [c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                if (usage and any(re.search(r"(^|\s)--[a-z]", p) for p in parts)) or any(p.startswith("--") for p in parts[:1]):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {parts[0][:60] if parts else ''}")
    assert found == [], "\n".join(found)
