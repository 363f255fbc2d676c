"""Serve lmrec's request path as bundles — PyTorch fp32 and compressed variants — and measure each through the real
service (``python -m recbook serve``) at a fixed open-loop rate: latency p50/p99 and the model's CPU ms per request.

    python tools/request_service_bench.py                       # lmrec on MovieLens (cached run), 10 req/s, 2 x 20 s
    python tools/request_service_bench.py --run runs/lmrec --variants onnx-fp32,onnx-int8+table-int8 --rps 10

Writes ``OUT/service_bench.json`` and prints a Markdown table. What ``recbook bench --target request`` measures
in-process, this checks through HTTP: the same variants, exported with ``recbook export --request-variant``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = "onnx-fp32,onnx-int8+table-int8,student-int8-last20+table-int8,mlp-student-int8-last10+table-int8"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None, help="a 'recbook train --model lmrec' folder (default: the cached MovieLens lmrec run)")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated request variants (default {DEFAULT_VARIANTS})")
    parser.add_argument("--rps", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per bundle and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "build" / "request_service"))
    args = parser.parse_args(argv)

    from recbook.compress.request_variants import parse_variant
    from recbook.serve.export import export_bundle
    from recbook.serve.variant_bench import service_bench

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        try:
            parse_variant(v)
        except ValueError as exc:
            parser.error(f"--variants: {exc}")
    out = Path(args.out)
    if args.run is None:
        from recbook.profile import get_profile
        from recbook.runs.cache import cached_run

        run, info = cached_run("movielens-100k", "lmrec", get_profile("quick"), seed=0, all_users=True, progress=True)
        print(f"lmrec run: {info['cache']} ({run})", file=sys.stderr)
    else:
        run = Path(args.run)
    import shutil

    from recbook.runs.recipe import checkpoint_folder
    from recbook.serve.bundle import read_manifest, sha256_of

    weights = sha256_of(checkpoint_folder(run)[0] / "model.safetensors")
    bundles = {}
    for name in ["pytorch-fp32", *variants]:
        folder = out / "bundles" / name.replace("+", "_")
        variant = None if name == "pytorch-fp32" else name
        if (folder / "manifest.json").is_file():  # reuse a bundle only if exported from these weights, as this variant
            source = read_manifest(folder).get("source", {})
            if source.get("retriever_weights_sha256") != weights or source.get("request_variant") != variant:
                shutil.rmtree(folder)
        if not (folder / "manifest.json").is_file():
            export_bundle(run, folder, version=name.replace("+", "_"), request_variant=variant)
        bundles[name] = folder
    fp32 = [n for n in ("pytorch-fp32", "onnx-fp32") if n in bundles]
    records = service_bench(bundles, out / "logs", rps=args.rps, duration=args.duration, rounds=args.rounds, threads=args.threads,
                            baselines=fp32)
    tmp = out / ".service_bench.json.tmp"
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(out / "service_bench.json")
    cols = ["bundle", "requests", "errors", "p50_ms", "p99_ms", "model_cpu_ms_p50", "model_cpu_ms_p99", "speedup"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in records:
        print("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    print(f"\n{args.rps:g} requests/s offered (open loop, Poisson), {args.rounds} rounds x {args.duration:g} s per bundle, "
          f"{args.threads} thread(s); speedup = median model CPU ms of the faster fp32 bundle ({records[0]['baseline']}) / this bundle's. JSON: {out / 'service_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
