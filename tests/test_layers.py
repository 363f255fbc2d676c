"""The package's layer contract (the picture in COURSE.md, enforced): a module imports only from its own layer or the
layers below it — at the top of a file or lazily inside a function. The import graph is read from the source with
``ast``, so a lazy import cannot hide an upward dependency."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "recbook"

# bottom → top; each top-level module or package of recbook sits in one layer
LAYERS = [
    {"errors", "usage", "profile", "timing", "checkpoint", "losses", "stats", "metrics", "release", "__init__"},
    {"device"},
    {"data"},
    {"evaluate", "train"},
    {"models", "adapters", "peft"},  # a model may be fine-tuned through an adapter (peft) and vice versa
    {"pipeline", "cache"},  # fit any model by name, prepare data, run records, the cache of fits: what techniques and commands build on
    {"compress", "bench", "bench_report", "accel", "rerank", "robustness", "drift", "drift_export", "retention", "distributed"},
    {"continual", "serve"},
    {"cli", "course", "exercises", "__main__"},
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


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
