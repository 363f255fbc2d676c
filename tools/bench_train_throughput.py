"""Training throughput: recbook's data pipeline vs the seed article's, on the same model and data.

    python tools/bench_train_throughput.py                 # 40 steps each, batch 32, synthetic data
    python tools/bench_train_throughput.py --steps 100 --data movielens-100k

Both loops fine-tune the same cross-encoder (same initial weights, same optimizer, same batch size,
same examples) with the *same* step code; only the data path differs:

- **seed**: a ``Dataset`` whose ``__getitem__`` tokenizes one example and pads it to 128 tokens,
  batches drawn in random order (what the seed article does);
- **recbook**: tokenized once in batches (``tokenize_pairs``), dynamic padding (``PairCollator``),
  length-bucketed batches (``LengthBucketBatchSampler``).

The two run interleaved in blocks of ``--block`` steps after a warm-up block each, with the thread
count fixed, so both see the same machine load. Reported: examples/second (data preparation
included), the speed-up with a 95% interval paired by block (block *i* of one path against block *i* of
the other: :func:`recbook.perf.timing.paired_speedup` on seconds per example), and the BCE of each model after
the same number of steps on the same held-out pairs. ``--update-readme`` rewrites the README's throughput
section (between ``<!-- throughput:begin -->`` and ``<!-- throughput:end -->``) from the JSON it writes, so the
README never carries numbers typed by hand; ``--readme-only`` does that from an existing JSON without running.
This is a benchmark, not a test: timings vary with the machine; read the ratio and its interval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
README_BEGIN, README_END = "<!-- throughput:begin -->", "<!-- throughput:end -->"


class SeedStyleDataset(torch.utils.data.Dataset):
    """Tokenize in ``__getitem__`` and pad every example to ``max_length`` (the seed article's way)."""

    def __init__(self, pairs, tokenizer, max_length=128):
        self.h, self.c, self.y = pairs["history_text"].tolist(), pairs["item_text"].tolist(), pairs["label"].tolist()
        self.tokenizer, self.max_length = tokenizer, max_length

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        enc = self.tokenizer(self.h[i], self.c[i], truncation=True, max_length=self.max_length, padding="max_length", return_tensors="pt")
        item = {k: v.squeeze(0) for k, v in enc.items()}
        item["labels"] = torch.tensor(float(self.y[i]))
        return item


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", help="synthetic | movielens-100k")
    parser.add_argument("--steps", type=int, default=40, help="timed optimizer steps per pipeline")
    parser.add_argument("--block", type=int, default=5, help="steps per interleaved block")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "figures" / "bench_train_throughput.json"))
    parser.add_argument("--update-readme", action="store_true", help="rewrite README.md's throughput section from the result")
    parser.add_argument("--readme-only", action="store_true", help="only rewrite README.md's throughput section from --out (no run)")
    args = parser.parse_args(argv)
    if args.readme_only:
        try:
            report = json.loads(Path(args.out).read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--readme-only needs the JSON a run wrote at --out {args.out}: {exc}")
        update_readme(report, ROOT / "README.md")
        print(f"README.md: throughput section rewritten from {args.out}")
        return 0
    if args.steps < args.block or args.steps % args.block:
        parser.error("--steps must be a positive multiple of --block")

    from transformers import AutoModel

    from recbook.data import (
        LengthBucketBatchSampler,
        PairCollator,
        build_text_pairs,
        leave_last_out,
        load_dataset,
        make_training_pairs,
        to_hf_dataset,
        tokenize_pairs,
    )
    from recbook.data.text import HISTORY_FIELD
    from recbook.models.backbone import load_tokenizer, resolve_model_path
    from recbook.models.cross_encoder import CrossEncoder
    from recbook.perf.device import detect_device, environment_report, format_report, seed_everything
    from recbook.profile import get_profile
    from recbook.training.loop import autocast_dtype, parameter_groups

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = detect_device()
    amp = autocast_dtype(args.amp, device)
    profile = get_profile("quick")
    print(format_report(environment_report(device)))
    ds = load_dataset(args.data, **({"seed": args.seed, "n_users": profile.n_users, "n_items": profile.n_items} if args.data == "synthetic" else {}))
    split = leave_last_out(ds.interactions, drop_short_users=True)
    tokenizer = load_tokenizer()
    pairs = make_training_pairs(split.train, ds.item_ids, 2, seed=args.seed)
    text = build_text_pairs(pairs, split.train, ds, tokenizer, profile.max_history_items, 96, HISTORY_FIELD)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(text))
    heldout, train_text = text.iloc[order[:256]].reset_index(drop=True), text.iloc[order[256:]].reset_index(drop=True)

    # the two data paths
    prep_start = time.perf_counter()
    encoded = tokenize_pairs(to_hf_dataset(train_text, ["label", "history_text", "item_text"]), tokenizer, 128)
    prep_seconds = time.perf_counter() - prep_start
    g = torch.Generator().manual_seed(args.seed)
    loaders = {
        "seed (tokenize in __getitem__, pad to 128)": torch.utils.data.DataLoader(SeedStyleDataset(train_text, tokenizer), batch_size=args.batch_size, shuffle=True, generator=g),
        "recbook (pre-tokenized, dynamic padding, length buckets)": torch.utils.data.DataLoader(
            encoded, batch_sampler=LengthBucketBatchSampler(encoded["length"], args.batch_size, seed=args.seed), collate_fn=PairCollator(tokenizer)),
    }

    base = CrossEncoder(AutoModel.from_pretrained(resolve_model_path(None)))
    runs = {}
    for name, loader in loaders.items():
        model = CrossEncoder(AutoModel.from_pretrained(resolve_model_path(None)))
        model.load_state_dict(base.state_dict())
        model.to(device).train()
        opt = torch.optim.AdamW(parameter_groups(model, 0.01), lr=5e-5)
        runs[name] = {"model": model, "opt": opt, "it": iter(loader), "seconds": 0.0, "examples": 0, "tokens": 0, "steps": 0,
                      "blocks": []}  # seconds per example of each timed block, for the paired interval

    def step(run, timed: bool):
        start = time.perf_counter()
        batch = {k: v.to(device) for k, v in next(run["it"]).items()}  # data preparation is part of the cost
        with torch.autocast(device_type=device, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = run["model"].training_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run["model"].parameters(), 1.0)
        run["opt"].step()
        run["opt"].zero_grad(set_to_none=True)
        if timed:
            run["seconds"] += time.perf_counter() - start
            run["examples"] += len(batch["labels"])
            run["tokens"] += batch["input_ids"].numel()
        run["steps"] += 1

    from tqdm.auto import tqdm

    for run in runs.values():  # warm-up block, not timed
        for _ in range(args.block):
            step(run, timed=False)
    with tqdm(total=args.steps * len(runs), desc="interleaved steps") as bar:
        for _ in range(args.steps // args.block):
            for run in runs.values():
                seconds, examples = run["seconds"], run["examples"]
                for _ in range(args.block):
                    step(run, timed=True)
                    bar.update(1)
                run["blocks"].append((run["seconds"] - seconds) / (run["examples"] - examples))

    # quality after the same number of steps, on the same held-out pairs
    from recbook.data import encode_pairs
    from recbook.models.cross_encoder import predict_pairs
    from recbook.training.losses import bce_with_logits

    held = encode_pairs(heldout["history_text"], heldout["item_text"], tokenizer, 128)
    labels = torch.tensor(heldout["label"].to_numpy(), dtype=torch.float32)
    report = {"environment": environment_report(device), "data": args.data, "batch_size": args.batch_size, "timed_steps": args.steps,
              "warmup_steps": args.block, "amp": str(amp), "pre_tokenization_seconds_once": round(prep_seconds, 2), "pipelines": {}}
    for name, run in runs.items():
        logits = torch.tensor(predict_pairs(run["model"], held, PairCollator(tokenizer), 64, device, amp))
        report["pipelines"][name] = {
            "examples_per_second": round(run["examples"] / run["seconds"], 2),
            "token_slots_per_batch": round(run["tokens"] / (run["steps"] - args.block), 1),
            "heldout_bce_after_steps": round(float(bce_with_logits(logits, labels)), 4),
            "steps": run["steps"],
        }
    names = list(runs)
    from recbook.perf.timing import paired_speedup

    paired = paired_speedup(runs[names[0]]["blocks"], runs[names[1]]["blocks"])  # per-block seconds per example
    report["speedup_recbook_vs_seed"] = round(paired["speed_up"], 2)
    report["speedup_95ci"] = [round(paired["low"], 2), round(paired["high"], 2)]
    report["speedup_verdict"] = paired["verdict"]
    report["paired_blocks"] = paired["rounds"]
    report["block_steps"] = args.block
    speedup = paired["speed_up"]
    print()
    for name, row in report["pipelines"].items():
        print(f"{name:<58} {row['examples_per_second']:7.2f} ex/s | {row['token_slots_per_batch']:7.0f} token slots/batch | "
              f"held-out BCE after {row['steps']} steps: {row['heldout_bce_after_steps']:.4f}")
    print(f"\nrecbook / seed throughput: {speedup:.2f}× [{paired['low']:.2f}, {paired['high']:.2f}] ({paired['verdict']}, paired over "
          f"{paired['rounds']} blocks)  (the recbook path also tokenized everything once up front in {prep_seconds:.1f} s, "
          "amortised over all epochs)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print(f"written: {args.out}")
    if args.update_readme:
        update_readme(report, ROOT / "README.md")
        print("README.md: throughput section rewritten")
    return 0


def readme_section(report: dict) -> str:
    """The README's throughput section, every number taken from a run's JSON ``report``."""
    env = report["environment"]
    (seed_name, seed), (ours_name, ours) = report["pipelines"].items()
    seed_name, ours_name = (n.replace("_", "\\_") for n in (seed_name, ours_name))  # __getitem__ is not bold
    low, high = report.get("speedup_95ci", [float("nan"), float("nan")])
    interval = (f" [95% CI {low:.2f}–{high:.2f}, paired over {report['paired_blocks']} blocks: {report['speedup_verdict']}]"
                if "paired_blocks" in report else " (no interval: this JSON predates the paired blocks)")
    lines = [
        f"`python tools/bench_train_throughput.py --steps {report['timed_steps']} --block {report.get('block_steps', report['warmup_steps'])}"
        " --update-readme` fine-tunes the same",
        "cross-encoder from the same weights with the same step code, interleaved in blocks after a warm-up block,",
        f"batch {report['batch_size']}, {report['data']} data ({env.get('profile', '?')} profile), autocast {report['amp']}, on {env.get('cpu', '?')} "
        f"({env.get('torch_threads', '?')} threads; {env.get('cpu_features', '?')}):",
        "",
        f"| data path | examples/s | token slots per batch | held-out BCE after {seed['steps']} steps |",
        "|---|---:|---:|---:|",
        f"| {seed_name} | {seed['examples_per_second']:.2f} | {seed['token_slots_per_batch']:,.0f} | {seed['heldout_bce_after_steps']:.4f} |",
        f"| {ours_name} | {ours['examples_per_second']:.2f} | {ours['token_slots_per_batch']:,.0f} | {ours['heldout_bce_after_steps']:.4f} |",
        "",
        f"**{report['speedup_recbook_vs_seed']:.2f}× the throughput**{interval}; the held-out BCE after the same number of steps",
        f"is in the last column. The recbook path tokenized its training pairs once, up front, in "
        f"{report['pre_tokenization_seconds_once']:.1f} s — paid once, not every epoch.",
        "Raw output: `figures/bench_train_throughput.json`.",
    ]
    return "\n".join(lines)


def update_readme(report: dict, readme: Path) -> None:
    """Replace the text between the throughput markers in ``readme`` with :func:`readme_section` (atomically)."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"{readme}: no {README_BEGIN} … {README_END} markers to write the throughput section between")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(head + README_BEGIN + "\n" + readme_section(report) + "\n" + README_END + tail)
    tmp.replace(readme)


if __name__ == "__main__":
    sys.exit(main())
