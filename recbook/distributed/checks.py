"""Correctness checks for distributed training, run under ``torchrun`` (tests and notebook 15 use them).

    torchrun --nproc_per_node=2 -m recbook.distributed.checks ddp       # DDP on half batches == 1 process on full batches
    torchrun --nproc_per_node=2 -m recbook.distributed.checks fsdp      # FSDP2 shards, then gathers the same weights
    torchrun --nproc_per_node=2 -m recbook.distributed.checks tp        # tensor-parallel BERT layers == unsharded
    torchrun --nproc_per_node=2 -m recbook.distributed.checks embedding # row-sharded embedding table == full table

Each check builds a small BERT cross-encoder from a seeded config (no files needed), so every rank starts
from identical weights, and rank 0 prints one JSON line: the largest difference found and whether it is
within the tolerance.
"""

from __future__ import annotations

import copy
import json
import sys

import torch
import torch.distributed as dist

from recbook.distributed import (
    CommCounter,
    ShardedEmbedding,
    cleanup,
    exit_rank,
    init,
    local_state_bytes,
    parallelize_bert_layers,
    wrap_ddp,
    wrap_fsdp,
)

TOLERANCE = 1e-5


def tiny_cross_encoder(seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 2, vocab: int = 500):
    """A small BERT cross-encoder without dropout (so every run is deterministic)."""
    from transformers import BertConfig, BertModel

    from recbook.models.cross_encoder import CrossEncoder

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return CrossEncoder(BertModel(config), dropout=0.0).eval()


def global_batches(steps: int, batch: int, length: int = 12, vocab: int = 500, seed: int = 1) -> list[dict]:
    """The same seeded batches on every rank (token ids, attention masks with padding, 0/1 labels)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        ids = torch.randint(5, vocab, (batch, length), generator=g)
        lengths = torch.randint(length // 2, length + 1, (batch,), generator=g)
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        out.append({"input_ids": ids * mask, "attention_mask": mask, "labels": (torch.rand(batch, generator=g) < 0.4).float()})
    return out


def _shard(batch: dict, rank: int, world: int) -> dict:
    n = batch["labels"].shape[0] // world
    return {k: v[rank * n : (rank + 1) * n] for k, v in batch.items()}


def _config(steps: int):
    from recbook.training.loop import TrainConfig

    return TrainConfig(max_steps=steps, lr=1e-3, warmup_ratio=0.0, amp="off", device="cpu", progress=False, seed=0, log_every=1)


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def check_data_parallel(mode: str, info, steps: int = 3, batch: int = 8) -> dict:
    """Train ``steps`` steps with each rank on its share of every global batch (DDP or FSDP) and compare the
    weights with one process trained on the full batches."""
    from recbook.training.loop import train_model

    batches = global_batches(steps, batch)
    reference = tiny_cross_encoder()
    train_model(reference, batches, _config(steps))  # every rank computes the single-process result itself
    model = tiny_cross_encoder()
    wrapped = wrap_ddp(model, info) if mode == "ddp" else wrap_fsdp(model, info)
    counter = CommCounter().attach(wrapped) if mode == "ddp" else None
    result = train_model(wrapped, [_shard(b, info.rank, info.world_size) for b in batches], _config(steps))
    if mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = wrapped.inner.state_dict()
    diff = _max_diff(reference.state_dict(), state) if info.is_main or mode == "ddp" else 0.0
    memory = local_state_bytes(wrapped, result.optimizer)
    single = local_state_bytes(reference)
    out = {"check": mode, "world_size": info.world_size, "steps": steps, "max_abs_diff": diff, "ok": diff < TOLERANCE,
           "bytes_per_rank": memory, "parameter_bytes_one_process": single["parameters"]}
    if counter is not None:
        out["allreduce_bytes_per_step"] = counter.bytes / steps  # every gradient, once per step
    return out


def check_tensor_parallel(info) -> dict:
    """Column-/row-wise split BERT layers give the unsharded model's logits."""
    from torch.distributed.device_mesh import init_device_mesh

    model = tiny_cross_encoder(heads=2 * info.world_size, hidden=16 * info.world_size)
    reference = copy.deepcopy(model)
    mesh = init_device_mesh("cpu", (info.world_size,))
    parallelize_bert_layers(model, mesh)
    batch = global_batches(1, 4)[0]
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"])
        ref = reference(batch["input_ids"], batch["attention_mask"])
    diff = float((ours - ref).abs().max())
    layer = model.encoder.encoder.layer[0]
    local = layer.intermediate.dense.weight
    local = local.to_local() if hasattr(local, "to_local") else local
    return {"check": "tensor-parallel", "world_size": info.world_size, "max_abs_diff": diff, "ok": diff < TOLERANCE,
            "ffn_weight_shape_per_rank": list(local.shape),
            "ffn_weight_shape_full": list(reference.encoder.encoder.layer[0].intermediate.dense.weight.shape)}


def check_sharded_embedding(info, rows: int = 1000, dim: int = 16) -> dict:
    """A row-sharded table gives the full table's lookups and gradients."""
    torch.manual_seed(0)
    full = torch.nn.Embedding(rows, dim)
    sharded = ShardedEmbedding(rows, dim, info.rank, info.world_size, weight=full.weight)
    ids = torch.randint(0, rows, (6, 5), generator=torch.Generator().manual_seed(3))
    out, ref = sharded(ids), full(ids)
    (out * torch.arange(dim)).sum().backward()
    (ref * torch.arange(dim)).sum().backward()
    grad_diff = float((sharded.weight.grad - full.weight.grad[sharded.start : sharded.stop]).abs().max())
    diff = max(float((out - ref).abs().max()), grad_diff)
    return {"check": "sharded-embedding", "world_size": info.world_size, "rows_per_rank": sharded.stop - sharded.start,
            "rows": rows, "max_abs_diff": diff, "ok": diff < TOLERANCE}


CHECKS = ("ddp", "fsdp", "tp", "embedding")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: torchrun --nproc_per_node=N -m recbook.distributed.checks {{{'|'.join(CHECKS)}}}", file=sys.stderr)
        return 2
    info = init("gloo")
    torch.set_num_threads(1)
    try:
        name = argv[0]
        if name in ("ddp", "fsdp"):
            result = check_data_parallel(name, info)
        elif name == "tp":
            result = check_tensor_parallel(info)
        else:
            result = check_sharded_embedding(info)
        ok = torch.tensor([int(result["ok"])])
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)  # every rank must agree
        result["ok"] = bool(ok)
        if info.is_main:
            print(json.dumps(result))
        return 0 if result["ok"] else 1
    finally:
        cleanup()


if __name__ == "__main__":
    exit_rank(main())
