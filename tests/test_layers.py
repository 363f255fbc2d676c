"""The package's layer contract (the picture in COURSE.md, enforced): a module imports only from its own layer or the
layers below it — at the top of a file or lazily inside a function. The import graph is read from the source with
``ast``, so a lazy import cannot hide an upward dependency."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "recbook"
COURSE = ROOT.parent / "recbook_course"

# bottom → top. Each entry is a package or module of recbook (dotted, below ``recbook.``); a module belongs to the
# longest entry that names it or a package above it. A folder sits in one layer, with two exceptions that run models:
# perf.accel (making a model fast loads a backbone; the device and the clock are what everything else stands on) and
# evaluation.robustness (it perturbs inputs and re-embeds item texts; metrics and the protocol stand below the models).
LAYERS = [
    {"__init__", "errors", "usage", "profile"},  # the foundations: errors, what a user passes, the sizes
    {"perf"},  # the device, seeds and the clock (perf.device, perf.timing)
    {"data"},
    {"evaluation", "training"},  # metrics, statistics and the protocol; the loop, checkpoints and losses
    {"models", "finetune"},  # a model may be fine-tuned through an adapter (finetune.peft) and vice versa
    {"runs"},  # fit any model by name, prepare data, run records, the cache of fits: what techniques and commands build on
    {"compress", "continual", "distributed", "perf.accel", "evaluation.robustness"},  # the techniques
    {"serve"},
    {"cli", "__main__"},
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str:
    """The LAYERS entry of ``recbook.<...>``: the longest dotted prefix that has one."""
    parts = module.split(".")[1:]
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in LEVEL:
            return ".".join(parts[:k])
    return parts[0] if parts else "__init__"


def imports(path: Path) -> list[tuple[str, int]]:
    """Every recbook module ``path`` imports (absolute name, line), relative imports resolved."""
    rel = path.relative_to(ROOT.parent).with_suffix("")
    module = ".".join(rel.parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return [(t, line) for t, line in found if t == "recbook" or t.startswith("recbook.")]


def test_every_module_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert units - set(LEVEL) == set(), "add the new module to a layer in LAYERS"
    assert {u for u in LEVEL if "." in u} <= {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in ROOT.rglob("*.py")}


def test_the_library_never_imports_the_course_helpers():
    """recbook_course (exercises, records, the release) stands on the library, never under it."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] == "recbook_course"]
    assert found == []


def test_nothing_imports_a_layer_above_it():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        source = _unit("recbook." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
        for target, line in imports(path):
            if LEVEL[_unit(target)] > LEVEL[source]:
                upward.append(f"{path.relative_to(ROOT.parent)}:{line} ({source}, layer {LEVEL[source]}) imports {target} "
                              f"(layer {LEVEL[_unit(target)]})")
    assert upward == [], "\n".join(upward)


def test_the_checker_sees_lazy_imports(tmp_path):
    fake = ROOT / "models" / "_probe_for_test.py"
    try:
        fake.write_text("def f():\n    from ..serve import app\n")
        assert ("recbook.serve", 2) in imports(fake)
    finally:
        fake.unlink()
