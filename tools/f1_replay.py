"""Replay issue 22's finding F1 on a real service process with a MiniLM cross-encoder re-ranker: one key sends the
heaviest request it is allowed (``/rerank`` with 200 history items × 200 candidates) at 2% of its allowance, while
another key's ``/recommend`` (retrieval + 20 re-ranked pairs) runs at a fixed open-loop rate. The other key's p99 is
compared with its p99 alone — with the re-ranker fed in chunks (``--rerank-chunk``, the fix) and whole (0, before).

    python tools/f1_replay.py                     # chunk 32 and 0, 5 req/s, 20 s per phase
    python tools/f1_replay.py --chunks 16,32,0 --duration 30

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
RATE = 5000.0  # units per second per key: the heavy request (201 units) at 2% of it is one every 2.01 s, as in F1


def build_bundle(out: Path) -> Path:
    """A bundle over a 300-film synthetic catalogue with the MiniLM cross-encoder (int8 ONNX) as its re-ranker."""
    import torch

    from recbook.data import leave_last_out, make_synthetic
    from recbook.evaluate import history_for_test
    from recbook.models.backbone import load_backbone, load_tokenizer
    from recbook.models.cross_encoder import CrossEncoder
    from recbook.models.sequential import SequentialConfig, SequentialRecommender
    from recbook.serve.export import write_bundle

    if (out / "manifest.json").is_file():
        return out
    ds = make_synthetic(seed=0, n_users=200, n_items=300)
    history = history_for_test(leave_last_out(ds.interactions, drop_short_users=True))
    torch.manual_seed(0)
    retriever = SequentialRecommender(ds.n_items, SequentialConfig(max_len=50, dim=64, layers=2, heads=2, dropout=0.0)).eval()
    reranker = CrossEncoder(load_backbone(None)).eval()
    config = {"max_length": 128, "max_history_items": 10}
    return write_bundle(out, retriever, ds, history, reranker, load_tokenizer(None), config, version="f1-minilm")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", default="32,0", help="comma-separated --rerank-chunk values (0 = whole requests)")
    parser.add_argument("--rps", type=float, default=5.0, help="the light key's /recommend rate")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (alone, then with the heavy key)")
    parser.add_argument("--out", default=str(ROOT / "build" / "f1_replay"))
    args = parser.parse_args(argv)

    from recbook.serve.loadtest import noisy_neighbour
    from recbook.serve.process import ServiceProcess

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle(out / "bundle")
    items = json.loads((bundle / "items.json").read_text())["item_ids"]
    light_payloads = [{"history": items[i:i + 8], "k": 10} for i in range(0, 200, 10)]
    heavy = {"history": items[:200], "candidates": items[100:300]}
    keys = ("light-key-0123456789abcdef", "heavy-key-0123456789abcdef")
    results = []
    for chunk in [int(c) for c in args.chunks.split(",")]:
        env = {"RECBOOK_API_KEYS": ",".join(keys), "RECBOOK_RATE_LIMIT": str(RATE), "RECBOOK_LOG_SALT": "f1",
               "HF_HUB_OFFLINE": "1"}
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RECBOOK_")}, **env}
        with ServiceProcess(bundle, "--rerank-chunk", str(chunk), log_path=out / f"log-{chunk}.txt", env=env) as service:
            service.wait_ready(timeout=180)
            report = noisy_neighbour(service.url, light_payloads, heavy, keys[0], keys[1], light_rps=args.rps,
                                     heavy_interval=(len(heavy["candidates"]) + 1) / (0.02 * RATE), duration=args.duration)
        row = {"rerank_chunk": chunk, "quiet_p50_ms": report["quiet"]["accepted_p50_ms"], "quiet_p99_ms": report["quiet"]["accepted_p99_ms"],
               "loaded_p50_ms": report["loaded"]["accepted_p50_ms"], "loaded_p99_ms": report["loaded"]["accepted_p99_ms"],
               "p99_ratio": report["p99_ratio"], "light_statuses": report["loaded"]["status_counts"],
               "heavy_statuses": report["heavy_status_counts"], "heavy_p50_ms": report["heavy_p50_ms"]}
        results.append(row)
        print(json.dumps(row), flush=True)
    (out / "f1_replay.json").write_text(json.dumps(results, indent=1))
    print("\n| rerank chunk | light p99 alone (ms) | light p99 with heavy key (ms) | ratio | heavy request p50 (ms) | light statuses | heavy statuses |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rerank_chunk'] or 'whole'} | {r['quiet_p99_ms']:.0f} | {r['loaded_p99_ms']:.0f} | {r['p99_ratio']:.2f}× | "
              f"{r['heavy_p50_ms']:.0f} | {r['light_statuses']} | {r['heavy_statuses']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
