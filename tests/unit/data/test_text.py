import numpy as np
import pandas as pd
import pytest
import torch

from recbook.data import (
    DataError,
    LengthBucketBatchSampler,
    PairCollator,
    build_text_pairs,
    leave_last_out,
    make_training_pairs,
    padding_fraction,
    to_hf_dataset,
    tokenize_pairs,
)


@pytest.fixture(scope="module")
def pairs(synthetic):
    sp = leave_last_out(synthetic.interactions)
    return sp, make_training_pairs(sp.train, synthetic.item_ids, 2, seed=0)


def test_history_is_strictly_past_most_recent_first_and_excludes_candidate(synthetic, pairs):
    sp, tr = pairs
    tp = build_text_pairs(tr, sp.train, synthetic, max_history_items=5, max_history_tokens=10_000)
    titles = synthetic.item_titles()
    hist = sp.train.sort_values(["user_id", "timestamp"], kind="stable")
    for _, row in tp.sample(40, random_state=0).iterrows():
        u = hist[(hist.user_id == row.user_id) & (hist.timestamp < row.timestamp)]
        expected = [titles[i] for i in u["item_id"].tolist()[::-1][:5]]
        assert row.history_text == " ; ".join(expected)
        assert row.history_items == len(expected)
        assert row.item_text == synthetic.item_text()[row.item_id]


def test_history_texts_write_the_whole_history_without_a_candidate(synthetic, pairs):
    from recbook.data.text import history_texts

    sp, _ = pairs
    users = sp.test.user_id.to_numpy()[:20]
    texts = history_texts(users, sp.train, synthetic, max_history_items=5, max_history_tokens=10_000)
    titles = synthetic.item_titles()
    hist = sp.train.sort_values(["user_id", "timestamp"], kind="stable")
    for u, text in zip(users, texts):
        assert text == " ; ".join(titles[i] for i in hist.loc[hist.user_id == u, "item_id"].tolist()[::-1][:5])
    # the same text build_text_pairs writes for a (test time, held-out item) pair, whose candidate is not in the history
    tp = build_text_pairs(sp.test.iloc[:20], sp.train, synthetic, max_history_items=5, max_history_tokens=10_000)
    assert tp.history_text.tolist() == texts
    assert history_texts([-1], sp.train, synthetic) == [""]


def test_token_budget_is_respected(synthetic, pairs, tokenizer):
    sp, tr = pairs
    tp = build_text_pairs(tr.iloc[:300], sp.train, synthetic, tokenizer, max_history_items=50, max_history_tokens=20)
    n_tokens = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in tp.history_text]
    assert max(n_tokens) <= 20
    assert tp.history_items.max() >= 2


def test_history_for_evaluation_uses_all_training_rows(synthetic, pairs):
    sp, _ = pairs
    tp = build_text_pairs(sp.test[["user_id", "item_id"]], sp.train, synthetic, max_history_items=3)
    assert (tp.history_items == 3).all()


def test_build_text_pairs_errors(synthetic, pairs):
    sp, tr = pairs
    with pytest.raises(DataError, match="item_id"):
        build_text_pairs(tr.drop(columns="item_id"), sp.train, synthetic)
    with pytest.raises(DataError, match="not in"):
        build_text_pairs(tr.assign(item_id=10_000), sp.train, synthetic)
    with pytest.raises(DataError, match="history_field"):
        build_text_pairs(tr, sp.train, synthetic, history_field="plot")


def test_tokenize_and_collate_match_transformers(synthetic, pairs, tokenizer):
    from transformers import DataCollatorWithPadding

    sp, tr = pairs
    tp = build_text_pairs(tr.iloc[:64], sp.train, synthetic, tokenizer)
    ds = tokenize_pairs(to_hf_dataset(tp), tokenizer, max_length=48)
    assert max(ds["length"]) <= 48
    first = tokenizer(tp.history_text[0], tp.item_text[0], truncation="longest_first", max_length=48)
    assert ds[0]["input_ids"] == first["input_ids"]
    feats = [ds[i] for i in range(8)]
    batch = PairCollator(tokenizer)(feats)
    assert batch["input_ids"].shape[1] == max(f["length"] for f in feats)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [f["label"] for f in feats]
    reference = DataCollatorWithPadding(tokenizer)([{k: f[k] for k in ("input_ids", "attention_mask", "token_type_ids")} for f in feats])
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        torch.testing.assert_close(batch[key], reference[key])
    padded8 = PairCollator(tokenizer, pad_to_multiple_of=8)(feats)
    assert padded8["input_ids"].shape[1] % 8 == 0


def test_tokenize_and_collator_errors(tokenizer):
    import datasets

    with pytest.raises(DataError, match="history_text"):
        tokenize_pairs(datasets.Dataset.from_dict({"x": [1]}), tokenizer)
    with pytest.raises(ValueError, match="pad"):
        PairCollator(None)
    with pytest.raises(ValueError, match="empty"):
        PairCollator(pad_token_id=0)([])
    with pytest.raises(DataError, match="lack"):
        to_hf_dataset(pd.DataFrame({"a": [1]}), ["history_text"])


def test_bucket_sampler_covers_all_and_reduces_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 128, size=1000)
    sampler = LengthBucketBatchSampler(lengths, batch_size=32, seed=0)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(sampler) == len(batches)
    random_batches = [list(range(i, min(i + 32, 1000))) for i in range(0, 1000, 32)]
    assert padding_fraction(lengths, batches) < 0.5 * padding_fraction(lengths, random_batches)
    assert padding_fraction(lengths, random_batches) < padding_fraction(lengths, random_batches, pad_to=128)
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled each epoch
    assert all(len(b) == 32 for b in LengthBucketBatchSampler(lengths, 32, drop_last=True))
    unshuffled = list(LengthBucketBatchSampler(lengths, 32, shuffle=False))
    assert unshuffled == list(LengthBucketBatchSampler(lengths, 32, shuffle=False))


def test_bucket_sampler_and_padding_errors():
    with pytest.raises(ValueError):
        LengthBucketBatchSampler([], 4)
    with pytest.raises(ValueError):
        LengthBucketBatchSampler([3, 4], 0)
    with pytest.raises(ValueError, match="shorter"):
        padding_fraction([10, 20], [[0, 1]], pad_to=15)
    with pytest.raises(ValueError, match="no batches"):
        padding_fraction([10], [])


def test_title_plus_genres_history(synthetic, pairs):
    sp, _ = pairs
    tp = build_text_pairs(sp.test[["user_id", "item_id"]].head(3), sp.train, synthetic, max_history_items=1, history_field="title+genres")
    last = sp.train.sort_values(["user_id", "timestamp"], kind="stable").groupby("user_id").last()
    for _, row in tp.iterrows():
        item = synthetic.items.set_index("item_id").loc[last.loc[row.user_id, "item_id"]]
        assert row.history_text == f"{item.title} ({item.genres.replace('|', ', ')})"
