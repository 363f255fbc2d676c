"""torch.distributed on CPU: 2 gloo ranks launched by torchrun (a few seconds each, tiny models)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recbook.distributed import ShardedEmbedding, local_state_bytes
from recbook.distributed.checks import global_batches, tiny_cross_encoder

ROOT = Path(__file__).resolve().parents[3]


def torchrun(*args, nproc=2, timeout=300, env=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    return done


def last_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, stdout
    return json.loads(lines[-1])


@pytest.mark.slow
@pytest.mark.parametrize("check", ["ddp", "fsdp", "tp", "embedding"])
def test_distributed_checks_match_one_process(check):
    done = torchrun("-m", "recbook.distributed.checks", check)
    assert done.returncode == 0, done.stderr[-3000:]
    result = last_json(done.stdout)
    assert result["ok"] and result["max_abs_diff"] < 1e-5 and result["world_size"] == 2
    if check == "fsdp":  # each rank holds half of every parameter, gradient and AdamW moment
        per_rank = result["bytes_per_rank"]
        assert per_rank["parameters"] <= 0.55 * result["parameter_bytes_one_process"]
        assert per_rank["optimizer_state"] <= 1.1 * per_rank["parameters"] * 2
    if check == "ddp":  # replicated weights; every gradient all-reduced once per step
        assert result["bytes_per_rank"]["parameters"] == result["parameter_bytes_one_process"]
        assert result["allreduce_bytes_per_step"] == pytest.approx(result["parameter_bytes_one_process"], rel=0.01)
    if check == "tp":
        assert result["ffn_weight_shape_per_rank"][0] * 2 == result["ffn_weight_shape_full"][0]


def test_checks_usage_error():
    done = subprocess.run([sys.executable, "-m", "recbook.distributed.checks", "nccl-magic"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "usage" in done.stderr


def test_sharded_embedding_in_one_process_is_the_table():
    torch.manual_seed(0)
    full = torch.nn.Embedding(50, 4)
    shard = ShardedEmbedding(50, 4, rank=0, world_size=1, weight=full.weight)
    ids = torch.tensor([[0, 49, 7]])
    torch.testing.assert_close(shard(ids), full(ids))
    second_half = ShardedEmbedding(50, 4, rank=1, world_size=2, weight=full.weight)
    assert (second_half.start, second_half.stop) == (25, 50)
    out = second_half(ids)  # without a process group: only the local rows, zeros elsewhere
    assert torch.equal(out[0, 0], torch.zeros(4)) and torch.equal(out[0, 1], full.weight[49].detach())
    with pytest.raises(ValueError, match="split"):
        ShardedEmbedding(1, 4, rank=0, world_size=2)


def test_local_state_bytes_and_tiny_model():
    model = tiny_cross_encoder()
    bytes_ = local_state_bytes(model)
    n = sum(p.numel() for p in model.parameters())
    assert bytes_ == {"parameters": 4 * n, "gradients": 4 * n, "optimizer_state": 0}
    batches = global_batches(2, 4)
    assert len(batches) == 2 and batches[0]["input_ids"].shape == (4, 12)
    assert (batches[0]["input_ids"][batches[0]["attention_mask"] == 0] == 0).all()


@pytest.fixture(scope="module")
def tiny_env(tiny_backbone):
    return {"RECBOOK_PROFILE": "quick"}


@pytest.mark.slow
def test_torchrun_train_ddp_writes_metrics_and_a_checkpoint(tmp_path, tiny_backbone, tiny_env):
    out = tmp_path / "ddp"
    done = torchrun("-m", "recbook.cli.distributed_train", "--data", "synthetic", "--backbone", str(tiny_backbone),
                    "--max-steps", "2", "--eval-users", "3", "--out", str(out), env=tiny_env)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("protocol", "HR@10", "NDCG@10", "MRR", "AUC", "train_seconds", "world_size", "examples_per_second"):
        assert key in metrics, key
    assert metrics["world_size"] == 2 and metrics["steps"] == 2 and metrics["users"] == 3
    from recbook import cli

    assert cli.main(["evaluate", "--checkpoint", str(out), "--eval-users", "3"]) == 0  # the same format as `recbook train`


@pytest.mark.slow
def test_torchrun_fsdp_trains_and_gathers(tmp_path, tiny_backbone, tiny_env):
    out = tmp_path / "fsdp"
    done = torchrun("-m", "recbook.cli.distributed_train", "--mode", "fsdp", "--data", "synthetic", "--backbone", str(tiny_backbone),
                    "--max-steps", "2", "--eval-users", "2", "--out", str(out), env=tiny_env)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "fsdp" and "NDCG@10" in metrics
    assert (out / "checkpoint" / "model.safetensors").is_file() and (out / "checkpoint" / "config.json").is_file()
    from recbook.models.base import Recommender

    assert Recommender.from_pretrained(out / "checkpoint").model_type == "cross-encoder"  # the format `recbook train` writes


@pytest.mark.slow
def test_rank0_checkpoint_resumes_identically(tmp_path, tiny_backbone, tiny_env):
    from safetensors.torch import load_file

    common = ["-m", "recbook.cli.distributed_train", "--data", "synthetic", "--backbone", str(tiny_backbone), "--max-steps", "4",
              "--checkpoint-every", "2", "--no-eval"]
    straight = torchrun(*common, "--out", str(tmp_path / "a"), env=tiny_env)
    interrupted = torchrun(*common, "--stop-after", "2", "--out", str(tmp_path / "b"), env=tiny_env)
    resumed = torchrun(*common, "--resume", str(tmp_path / "b" / "train_state"), "--out", str(tmp_path / "c"), env=tiny_env)
    for done in (straight, interrupted, resumed):
        assert done.returncode == 0, done.stderr[-3000:]
    a = load_file(str(tmp_path / "a" / "train_state" / "model.safetensors"))
    c = load_file(str(tmp_path / "c" / "train_state" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "train_state" / "model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the interruption really happened before the end
    for k in a:
        assert torch.equal(a[k], c[k]), k  # bit-identical after resuming (per-rank RNG states restored)


@pytest.mark.slow
def test_train_entry_rejects_bad_combinations(tmp_path, tiny_backbone, tiny_env):
    done = torchrun("-m", "recbook.cli.distributed_train", "--mode", "fsdp", "--checkpoint-every", "2", "--out", str(tmp_path),
                    "--backbone", str(tiny_backbone), env=tiny_env)
    assert done.returncode != 0 and "implemented for --mode ddp" in done.stderr


def test_init_on_cuda_pairs_gloo_for_cpu_tensors_with_nccl(monkeypatch):
    import recbook.distributed as rd

    seen = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: seen.setdefault("device", i))
    monkeypatch.setattr(rd.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(rd.dist, "init_process_group", lambda backend, **kw: seen.setdefault("backend", backend))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    info = rd.init()
    assert seen["backend"] == info.backend == "cpu:gloo,cuda:nccl"  # nccl alone refuses the CPU metric tensors
    assert info.device == "cuda:0" and seen["device"] == 0


def test_exit_rank_flushes_output_and_keeps_the_exit_code():
    code = "from recbook.distributed import exit_rank; print('result line', end=''); exit_rank(3)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 3 and done.stdout == "result line"
