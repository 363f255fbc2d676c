"""recbook.distributed.embed: a catalogue embedded by 2 torchrun ranks, gathered in item order, equals one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recbook.distributed.embed import shard_bounds

ROOT = Path(__file__).resolve().parents[3]


def test_shards_are_contiguous_balanced_and_cover_everything():
    for n, world in [(10, 2), (7, 3), (2, 3), (0, 2), (5, 1)]:
        bounds = shard_bounds(n, world)
        assert len(bounds) == world and bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        sizes = [b - a for a, b in bounds]
        assert max(sizes) - min(sizes) <= 1
    assert shard_bounds(7, 3) == [(0, 2), (2, 5), (5, 7)]
    with pytest.raises(ValueError, match="world_size"):
        shard_bounds(3, 0)


def _gather_worker(rank, world, port, n, queue):
    import torch.distributed as dist

    from recbook.distributed.embed import gather_in_order, shard_bounds

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        start, stop = shard_bounds(n, world)[rank]
        local = np.arange(start, stop, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
        out = gather_in_order(local if stop > start else np.zeros((0, 0), np.float32), n, rank, world)
        if rank == 0:
            queue.put(out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("n", [7, 2])  # uneven shards; fewer rows than ranks (an empty shard)
def test_gather_pads_uneven_shards_and_keeps_row_order(n):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_gather_worker, args=(3, port, n, queue), nprocs=3, start_method="spawn")
    out = queue.get(timeout=30)
    np.testing.assert_array_equal(out, np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3)))


def torchrun(*args, nproc=2, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m",
           "recbook.cli.distributed_embed", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "RECBOOK_PROFILE": "quick"})


@pytest.mark.slow
def test_two_ranks_embed_the_catalogue_like_one_process(tmp_path, tiny_backbone):
    from recbook.cli.distributed_embed import source_texts
    from recbook.compress.catalogue import load_sentence_encoder
    from recbook.models.item_text import embed_texts

    out = tmp_path / "vectors.npy"
    done = torchrun("--data", "synthetic", "--backbone", str(tiny_backbone), "--limit", "25", "--batch-size", "4",
                    "--threads", "1", "--check", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert result["ok"] and result["max_abs_diff"] <= 1e-5 and result["world_size"] == 2
    assert result["items"] == 25 and result["rows_per_rank"] == [12, 13] and result["dim"] == 32
    # the file holds the catalogue in item order: the same rows as embedding here, in this process
    texts = source_texts("synthetic", "quick", limit=25)
    model, tokenizer = load_sentence_encoder(tiny_backbone)
    np.testing.assert_allclose(np.load(out), embed_texts(model, tokenizer, texts, batch_size=7), atol=1e-5)


@pytest.mark.parametrize("args, message", [(["--data", "nowhere"], "--data 'nowhere'"), (["--limit", "0"], "--limit must be")])
def test_bad_arguments_are_named_before_any_process_group(args, message, capsys):
    from recbook.cli.distributed_embed import main

    assert main(args) == 2
    assert message in capsys.readouterr().err
