"""Replay issue 22's finding F1 on a real service process with a MiniLM cross-encoder re-ranker: one key sends the
heaviest request it is allowed at 2% of its allowance, while another key's ``/recommend`` (retrieval + 20 re-ranked
pairs) runs at a fixed open-loop rate. The other key's p99 is compared with its p99 alone — with the re-ranker fed in
chunks (``--rerank-chunk``, the fix) and whole (0, the behaviour F1 was found on). Two allowances:

- ``deployed``: 50 units/s per key (``deploy/k8s/deployment.yaml``), burst 50 — the heaviest allowed request is a
  ``/rerank`` of 50 candidates (a ``/rerank`` of n candidates costs n units: 1 at the door, n − 1 more once scored), at
  2% of the allowance one every 50 s;
- ``generous``: 5000 units/s, so the request F1 used (200 history items × 200 candidates, 200 units) is allowed and,
  at 2%, sent every 2 s — as in the original finding.

    python tools/f1_replay.py                               # both allowances, chunk 20 and whole, 1.5 req/s
    python tools/f1_replay.py --scenarios generous --chunks 16,32,0 --duration 30

The re-ranker's head is not trained: latency does not depend on the weights' values. Prints a Markdown table and
writes ``OUT/f1_replay.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {"deployed": (50.0, 50, 60.0), "generous": (5000.0, 200, 30.0)}  # rate (units/s), heavy candidates, seconds per phase


def build_bundle(out: Path) -> Path:
    """A bundle over a 300-film synthetic catalogue with the MiniLM cross-encoder (int8 ONNX) as its re-ranker."""
    import torch

    from recbook.data import leave_last_out, make_synthetic
    from recbook.evaluation.protocol import history_for_test
    from recbook.models.backbone import load_backbone
    from recbook.models.cross_encoder import CrossEncoder
    from recbook.models.sequential import SequentialConfig, SequentialRecommender
    from recbook.serve.export import write_bundle

    if (out / "manifest.json").is_file():
        return out
    ds = make_synthetic(seed=0, n_users=200, n_items=300)
    history = history_for_test(leave_last_out(ds.interactions, drop_short_users=True))
    torch.manual_seed(0)
    retriever = SequentialRecommender(ds.n_items, SequentialConfig(max_len=50, dim=64, layers=2, heads=2, dropout=0.0)).eval()
    encoder, tokenizer = load_backbone(None)
    reranker = CrossEncoder(encoder).eval()
    config = {"max_length": 128, "max_history_items": 10}
    return write_bundle(out, retriever, ds, history, reranker, tokenizer, config, version="f1-minilm")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="deployed,generous", help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--chunks", default="20,0", help="comma-separated --rerank-chunk values (0 = whole requests)")
    parser.add_argument("--rps", type=float, default=1.5, help="the light key's /recommend rate (below the service's capacity)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase (alone, then with the heavy key); "
                        "default 60 deployed, 30 generous")
    parser.add_argument("--out", default=str(ROOT / "build" / "f1_replay"))
    args = parser.parse_args(argv)

    from recbook.serve.loadtest import noisy_neighbour
    from recbook.serve.process import ServiceProcess

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle(out / "bundle")
    items = json.loads((bundle / "items.json").read_text())["item_ids"]
    light_payloads = [{"history": items[i:i + 8], "k": 10} for i in range(0, 200, 10)]
    keys = ("light-key-0123456789abcdef", "heavy-key-0123456789abcdef")
    results = []
    for scenario in args.scenarios.split(","):
        rate, n_candidates, duration = SCENARIOS[scenario]
        heavy = {"history": items[:200], "candidates": items[300 - n_candidates:300]}
        for chunk in [int(c) for c in args.chunks.split(",")]:
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("RECBOOK_")}, "RECBOOK_API_KEYS": ",".join(keys),
                   "RECBOOK_RATE_LIMIT": str(rate), "RECBOOK_LOG_SALT": "f1", "HF_HUB_OFFLINE": "1"}
            with ServiceProcess(bundle, "--rerank-chunk", str(chunk), log_path=out / f"log-{scenario}-{chunk}.txt", env=env) as service:
                service.wait_ready(timeout=180)
                report = noisy_neighbour(service.url, light_payloads, heavy, keys[0], keys[1], light_rps=args.rps,
                                         heavy_interval=n_candidates / (0.02 * rate), duration=args.duration or duration)
            row = {"scenario": scenario, "rate": rate, "heavy_candidates": n_candidates, "rerank_chunk": chunk,
                   "quiet_p50_ms": report["quiet"]["accepted_p50_ms"], "quiet_p99_ms": report["quiet"]["accepted_p99_ms"],
                   "loaded_p50_ms": report["loaded"]["accepted_p50_ms"], "loaded_p99_ms": report["loaded"]["accepted_p99_ms"],
                   "p99_ratio": report["p99_ratio"], "light_statuses": report["loaded"]["status_counts"],
                   "heavy_statuses": report["heavy_status_counts"], "heavy_p50_ms": report["heavy_p50_ms"]}
            results.append(row)
            print(json.dumps(row), flush=True)
    (out / "f1_replay.json").write_text(json.dumps(results, indent=1))
    print("\n| allowance | heavy request | rerank chunk | light p99 alone (ms) | light p99 beside it (ms) | ratio | heavy p50 (ms) | light statuses | heavy statuses |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rate']:g} units/s | {r['heavy_candidates']} pairs every {r['heavy_candidates'] / (0.02 * r['rate']):.1f} s | "
              f"{r['rerank_chunk'] or 'whole'} | {r['quiet_p99_ms']:.0f} | {r['loaded_p99_ms']:.0f} | {r['p99_ratio']:.2f}× | "
              f"{r['heavy_p50_ms']:.0f} | {r['light_statuses']} | {r['heavy_statuses']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
