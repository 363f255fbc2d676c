"""``torchrun --nproc_per_node=N -m recbook.cli.distributed_embed …``: embed a whole catalogue's texts with N
processes, gathered in item order (:mod:`recbook.distributed.embed` does the work; this parses, checks and prints).

    torchrun --nproc_per_node=2 -m recbook.cli.distributed_embed --data movielens-100k --check
    torchrun --nproc_per_node=2 -m recbook.cli.distributed_embed --data synthetic --out item_vectors.npy

Rank 0 prints one JSON line (items, dimension, rows per rank, seconds; with ``--check``: the one-process time,
the largest difference and ``ok``) and writes ``--out`` (a ``.npy`` matrix, rows in ``dataset.item_ids`` order).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from recbook.distributed import cleanup, exit_rank, init
from recbook.distributed.embed import check_against_one_process, distributed_embed, shard_bounds


def build_parser() -> argparse.ArgumentParser:
    from recbook.profile import PROFILES
    from recbook.usage import DATA_HELP

    p = argparse.ArgumentParser(prog="torchrun ... -m recbook.cli.distributed_embed", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic", help=DATA_HELP)
    p.add_argument("--profile", choices=tuple(PROFILES), default=None, help="sizes the synthetic catalogue")
    p.add_argument("--backbone", default=None, help="the sentence encoder (default: the offline all-MiniLM-L6-v2)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="embed only the first N items (quick checks)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rank (default: CPU cores ÷ ranks)")
    p.add_argument("--check", action="store_true", help="also embed in one process on rank 0 and compare (max |diff| ≤ 1e-5)")
    p.add_argument("--out", default=None, help="a .npy file for the gathered matrix (rank 0 writes)")
    p.add_argument("--seed", type=int, default=0)
    return p


def source_texts(source: str, profile_name: str | None = None, seed: int = 0, limit: int | None = None) -> list[str]:
    """Every catalogue item's text for a data source (the whole catalogue, all users), in ``dataset.item_ids`` order."""
    from recbook.compress.catalogue import catalogue_texts_in_order
    from recbook.profile import get_profile
    from recbook.runs.recipe import load_data_source

    texts = catalogue_texts_in_order(load_data_source(source, get_profile(profile_name), seed, all_users=True))
    return texts[:limit] if limit is not None else texts


def main(argv: list[str] | None = None) -> int:
    from recbook.cli.flags import flag_error
    from recbook.compress.catalogue import load_sentence_encoder
    from recbook.errors import ConfigError
    from recbook.usage import UsageError

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    for name in ("max_length", "batch_size", "limit", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"--{name.replace('_', '-')} must be >= 1, got {value}", file=sys.stderr)
            return 2
    try:
        texts = source_texts(args.data, args.profile, args.seed, args.limit)
    except (UsageError, ConfigError) as exc:
        exc = flag_error(exc) if isinstance(exc, ConfigError) else exc
        print(exc, file=sys.stderr)
        return 2
    info = init("gloo")
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // info.world_size))
    try:
        model, tokenizer = load_sentence_encoder(args.backbone)
        if args.check:
            result, matrix = check_against_one_process(model, tokenizer, texts, info.rank, info.world_size, args.max_length,
                                                       args.batch_size)
            result = result or {}
        else:
            start = time.perf_counter()
            matrix = distributed_embed(model, tokenizer, texts, info.rank, info.world_size, args.max_length, args.batch_size)
            result = {"world_size": info.world_size, "items": len(texts),
                      "rows_per_rank": [b - a for a, b in shard_bounds(len(texts), info.world_size)],
                      "seconds": time.perf_counter() - start}
            if info.is_main:
                result["dim"] = int(matrix.shape[1])
        ok = torch.tensor([int(result.get("ok", True))])
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        if info.is_main:
            if args.out and matrix is not None:
                np.save(args.out, matrix)
                result["out"] = str(args.out)
            print(json.dumps(result))
        return 0 if bool(ok) else 1
    finally:
        cleanup()


if __name__ == "__main__":
    exit_rank(main())
