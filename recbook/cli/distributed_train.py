"""``torchrun --nproc_per_node=N -m recbook.cli.distributed_train …``: the course's training, data-parallel.

Taught in notebook ``15_distributed``.

Same data, model, loop and metrics as ``python -m recbook train``; what changes:

- every rank builds the same examples and a ``DistributedSampler`` gives each rank a disjoint shard,
  reshuffled every epoch (``set_epoch``); the per-rank batch is the global batch divided by the ranks;
- the model is wrapped with DDP (``--mode ddp``) or sharded with FSDP2 (``--mode fsdp``);
- gradient accumulation skips the all-reduce on all but the last micro-batch (``no_sync``);
- only rank 0 shows progress, writes checkpoints and ``metrics.json`` and prints the metrics.

One node, 2 CPU processes::

    torchrun --nproc_per_node=2 -m recbook.cli.distributed_train --data synthetic --profile quick --out runs/ddp

Two nodes with 4 GPUs each (run on both machines; ``node0`` reachable from ``node1``)::

    torchrun --nnodes=2 --nproc_per_node=4 --node_rank=0 --rdzv_backend=c10d --rdzv_endpoint=node0:29500 \\
        -m recbook.cli.distributed_train --data movielens-100k --profile full --out runs/ddp   # node_rank=1 on node1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from recbook.cli.flags import check_out_folder, flag_error
from recbook.distributed import CommCounter, cleanup, distributed_loader, exit_rank, init, local_state_bytes, wrap_ddp, wrap_fsdp
from recbook.errors import ConfigError
from recbook.profile import PROFILES
from recbook.usage import DATA_HELP, UsageError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun ... -m recbook.cli.distributed_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="synthetic", help=DATA_HELP)
    p.add_argument("--model", default="cross-encoder", choices=("cross-encoder",))
    p.add_argument("--mode", default="ddp", choices=("ddp", "fsdp"))
    p.add_argument("--profile", choices=tuple(PROFILES), default=None)
    p.add_argument("--out", default=None, help="folder for metrics.json and the checkpoint (rank 0 writes)")
    p.add_argument("--backbone", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=None, help="default: the profile's")
    p.add_argument("--eval-users", type=int, default=None)
    p.add_argument("--no-eval", action="store_true", help="train only (benchmarks)")
    p.add_argument("--resume", default=None, help="a checkpoint folder written by an earlier run (DDP)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="save (rank 0) every N optimizer steps (DDP)")
    p.add_argument("--stop-after", type=int, default=None, help="leave after N optimizer steps (simulates a crash, for resume tests)")
    return p


def _save_model(wrapped, model, tokenizer, args, profile, info, dataset) -> None:
    """Rank 0 writes ``OUT/checkpoint`` like ``python -m recbook train`` (FSDP first gathers the full weights)."""
    from recbook.models.cross_encoder import CrossEncoder

    if args.mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))  # every rank joins
        if not info.is_main:
            return
        from transformers import AutoModel

        plain = CrossEncoder(AutoModel.from_config(model.encoder.config), dropout=model.dropout.p, pooling=model.pooling)
        plain.load_state_dict(full)
    else:
        if not info.is_main:
            return
        plain = wrapped.inner
    from recbook.models.cross_encoder import CrossEncoderConfig, CrossEncoderRecommender
    from recbook.runs.recipe import run_record

    config = CrossEncoderConfig.from_profile(profile, backbone=args.backbone, seed=args.seed)
    folder = CrossEncoderRecommender.from_network(plain, tokenizer, dataset, config).save_pretrained(Path(args.out) / "checkpoint")

    run = run_record(args.data, args.model, profile, args.seed, dataset, backbone=args.backbone,
                     distributed={"mode": args.mode, "world_size": info.world_size})
    (folder / "run.json").write_text(json.dumps(run, indent=1))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from recbook.evaluation.protocol import history_for_test
    from recbook.models.backbone import load_backbone
    from recbook.models.cross_encoder import CrossEncoder, cross_encoder_examples
    from recbook.models.text_base import bert_config, bert_scorer
    from recbook.perf.device import environment_report, seed_everything
    from recbook.profile import get_profile
    from recbook.runs.recipe import check_backbone, evaluate_split, prepare_data

    info = init()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // info.world_size) if info.device == "cpu" else torch.get_num_threads())
    try:
        if args.out:
            check_out_folder(args.out)
        check_backbone(args.backbone)
        profile = get_profile(args.profile)
        if profile.batch_size % info.world_size:
            raise UsageError(f"the global batch {profile.batch_size} does not split evenly over {info.world_size} ranks")
        seed_everything(args.seed)
        ds, split = prepare_data(args.data, profile, args.seed)
        encoder, tokenizer = load_backbone(args.backbone)
        model = CrossEncoder(encoder)
        encoded = cross_encoder_examples(ds, split, tokenizer, profile, args.seed)
        loader = distributed_loader(encoded, tokenizer, profile.batch_size // info.world_size, info.rank, info.world_size, args.seed)
        wrapped = wrap_ddp(model, info) if args.mode == "ddp" else wrap_fsdp(model, info)
        counter = CommCounter().attach(wrapped) if args.mode == "ddp" else None
        if (args.checkpoint_every or args.resume) and args.mode != "ddp":
            raise UsageError("--checkpoint-every/--resume are implemented for --mode ddp (FSDP state is sharded)")
        if args.checkpoint_every and not args.out:
            raise UsageError("--checkpoint-every needs --out (the checkpoint goes to OUT/train_state)")
        # every rank joins the save (RNG states are gathered), rank 0 writes; DDP keeps the weights identical
        checkpoint = str(Path(args.out) / "train_state") if args.checkpoint_every else None
        config = bert_config(profile, args.seed, progress=info.is_main, device=info.device, grad_accum=args.grad_accum,
                             max_steps=args.max_steps or profile.bert_max_steps, checkpoint_dir=checkpoint,
                             checkpoint_every=args.checkpoint_every, stop_after=args.stop_after)
        from recbook.training.loop import train_model

        start = time.perf_counter()
        result = train_model(wrapped, loader, config, resume_from=args.resume)
        seconds = time.perf_counter() - start
        examples = torch.tensor([result.examples], dtype=torch.long)
        dist.all_reduce(examples)
        memory = local_state_bytes(wrapped, result.optimizer)
        metrics = {"mode": args.mode, "world_size": info.world_size, "backend": info.backend, "steps": result.steps,
                   "train_seconds": round(seconds, 2), "examples_per_second": round(int(examples) / seconds, 2),
                   "rank0_bytes": memory}
        if counter is not None and result.steps:
            metrics["allreduce_bytes_per_step"] = counter.bytes / result.steps  # gradients sent by DDP, per rank
        if not args.no_eval:
            plain = wrapped.inner if args.mode == "ddp" else model
            scorer = bert_scorer(plain, tokenizer, ds, history_for_test(split), profile, info.device)
            if args.mode == "fsdp" or info.is_main:  # FSDP's forward needs every rank (all-gathers)
                metrics.update(evaluate_split(scorer, ds, split, profile, args.seed, ("sampled",), args.eval_users or profile.bert_eval_users))
        if args.out:
            _save_model(wrapped, model, tokenizer, args, profile, info, ds)
        if info.is_main:
            metrics.update(data=args.data, model=args.model, profile=profile.name, environment=environment_report(info.device))
            if args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                (Path(args.out) / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
            print(json.dumps({k: v for k, v in metrics.items() if k != "environment"}, indent=1, default=str))
        dist.barrier()
        return 0
    except (UsageError, ConfigError) as exc:
        exc = flag_error(exc) if isinstance(exc, ConfigError) else exc
        if info.is_main:
            print(f"recbook.cli.distributed_train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        cleanup()


if __name__ == "__main__":
    exit_rank(main())
