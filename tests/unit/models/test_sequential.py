"""SASRec / BERT4Rec (recbook.models.sequential) and the item cold-start split."""

import numpy as np
import pandas as pd
import pytest
import torch

from recbook.data.splits import cold_item_split, leave_last_out
from recbook.data.windows import training_windows, user_sequences
from recbook.models.item_text import item_text_embeddings
from recbook.models.sequential import SequentialConfig, SequentialRecommender
from recbook.models.sequential_fit import default_train_config, fit_sequential
from recbook.training.loop import TrainConfig, train_model


def _tiny(objective="causal", features="id", n_items=20, text_dim=8, dropout=0.0, known=None, seed=0):
    torch.manual_seed(seed)
    text = np.random.default_rng(seed).normal(size=(n_items, text_dim)).astype(np.float32)
    cfg = SequentialConfig(objective=objective, item_features=features, max_len=6, dim=16, layers=2, heads=2, dropout=dropout)
    return SequentialRecommender(n_items, cfg, text if features != "id" else None, known)


def test_user_sequences_keep_file_order_within_equal_timestamps():
    df = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [30, 10, 20, 10], "timestamp": [5, 5, 4, 1]})
    seqs = user_sequences(df, pd.Series([0, 1, 2], index=[10, 20, 30]))
    # item 20 (t=4) first, then 30 and 10 (both t=5) in the table's order — not sorted by id
    assert seqs[1].tolist() == [2, 3, 1] and seqs[2].tolist() == [1]
    with pytest.raises(ValueError, match="not in the catalogue"):
        user_sequences(pd.DataFrame({"user_id": [1], "item_id": [99], "timestamp": [0]}), pd.Series([0], index=[10]))


def test_causal_windows_predict_the_next_item_and_use_each_target_once():
    seqs = {"u": np.arange(1, 15)}  # 14 items, max_len 6
    w = training_windows(seqs, 6, "causal")
    inp, tgt = w["input"].numpy(), w["target"].numpy()
    assert inp.shape[1] == 6
    for i, t in zip(inp, tgt):  # the target is the input shifted by one, padding aligned
        real = t > 0
        assert np.array_equal(t[real][:-1], i[real][1:])
    targets = tgt[tgt > 0]
    assert sorted(targets.tolist()) == list(range(2, 15))  # every item but the first is a target exactly once
    cloze = training_windows(seqs, 6, "cloze")
    assert "target" not in cloze and cloze["input"].shape == (3, 6) and cloze["input"][-1, 0] == 0  # left padded
    with pytest.raises(ValueError, match="two or more"):
        training_windows({"u": np.array([1])}, 6, "causal")


@pytest.mark.parametrize("objective", ["causal", "cloze"])
@pytest.mark.parametrize("features", ["id", "text", "hybrid"])
def test_scores_are_finite_for_short_and_empty_histories(objective, features):
    model = _tiny(objective, features)
    histories = [np.array([], dtype=np.int64), np.array([3]), np.array([1, 2]), np.arange(1, 21)]
    scores = model.score_all(histories)
    assert scores.shape == (4, 20) and np.isfinite(scores).all()
    # training mode too (dropout on, masks random)
    batch = training_windows({"a": np.array([1, 2]), "b": np.arange(1, 12)}, 6, objective)
    loss = model.train().training_loss(batch)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()


def test_causal_model_cannot_see_the_future():
    model = _tiny("causal").eval()
    a = torch.tensor([[0, 0, 1, 2, 3, 4]])
    b = torch.tensor([[0, 0, 1, 2, 3, 9]])  # differs only at the last position
    ha, hb = model.encode(a), model.encode(b)
    assert torch.allclose(ha[:, :-1], hb[:, :-1], atol=1e-6) and not torch.allclose(ha[:, -1], hb[:, -1])
    cloze = _tiny("cloze").eval()
    assert not torch.allclose(cloze.encode(a)[:, 2], cloze.encode(b)[:, 2])  # bidirectional: the future matters


def test_gradient_accumulation_equals_one_large_batch():
    windows = training_windows({u: np.random.default_rng(u).integers(1, 21, size=9) for u in range(16)}, 6, "causal")
    windows = {k: v[:16] for k, v in windows.items()}

    def grads(micro: int):  # the gradient the optimizer receives: mean over micro-batches of their losses
        model = _tiny("causal", dropout=0.0, seed=1).train()
        parts = [{k: v[i : i + micro] for k, v in windows.items()} for i in range(0, 16, micro)]
        for b in parts:
            (model.training_loss(b) / len(parts)).backward()
        return torch.cat([p.grad.ravel() for p in model.parameters() if p.grad is not None])

    g_big, g_small = grads(16), grads(4)
    assert (g_big - g_small).abs().max().item() < 1e-6 * max(1.0, g_big.abs().max().item())

    def one_step(micro: int, accum: int, lr: float = 1e-3):
        model = _tiny("causal", dropout=0.0, seed=1)
        batches = [{k: v[i : i + micro] for k, v in windows.items()} for i in range(0, 16, micro)]
        train_model(model, batches, TrainConfig(max_steps=1, lr=lr, grad_accum=accum, warmup_ratio=0.0, amp="off", progress=False))
        return torch.cat([p.detach().ravel() for p in model.parameters()])

    big, small = one_step(16, 1), one_step(4, 4)
    # AdamW divides by |g|: rounding in near-zero gradients is magnified, so the tolerance is 1% of the step size
    assert (big - small).abs().max().item() < 1e-2 * 1e-3
    assert (big - torch.cat([p.detach().ravel() for p in _tiny("causal", seed=1).parameters()])).abs().max() > 1e-4  # it moved


def test_unknown_items_have_no_id_vector_but_text_still_scores_them():
    known = np.ones(20, dtype=bool)
    known[15:] = False  # items 16..20 never seen in training
    hist = [np.array([1, 2, 3])]
    ids = _tiny("causal", "id", known=known).score_all(hist)[0]
    assert np.all(ids[15:] == 0.0)  # nothing to go on: every cold item gets the same score
    text = _tiny("causal", "text", known=known).score_all(hist)[0]
    assert len(np.unique(np.round(text[15:], 6))) == 5  # text tells cold items apart
    hybrid = _tiny("causal", "hybrid", known=known)
    assert np.allclose(hybrid.item_table()[16:21].detach(), hybrid.text_proj(hybrid.text_features[16:21]).detach())


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="objective"):
        SequentialConfig(objective="gpt")
    with pytest.raises(ValueError, match="item_features"):
        SequentialConfig(item_features="image")
    with pytest.raises(ValueError, match="divisible"):
        SequentialConfig(dim=10, heads=3)
    with pytest.raises(ValueError, match="dropout"):
        SequentialConfig(dropout=1.0)
    with pytest.raises(ValueError, match="text_features"):
        SequentialRecommender(5, SequentialConfig(item_features="text"))
    with pytest.raises(ValueError, match="one row per item"):
        SequentialRecommender(5, SequentialConfig(item_features="text"), text_features=np.zeros((4, 3)))


def test_save_load_roundtrip(tmp_path):
    model = _tiny("cloze", "hybrid").eval()
    model.save(tmp_path / "m", item_ids=np.arange(100, 120))
    loaded, ids = SequentialRecommender.load(tmp_path / "m")
    hist = [np.array([1, 5, 7])]
    assert np.array_equal(ids, np.arange(100, 120))
    assert np.allclose(model.score_all(hist), loaded.score_all(hist), atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="sequential.json"):
        SequentialRecommender.load(tmp_path)


def test_fit_sequential_learns_and_stops_early(synthetic):
    split = leave_last_out(synthetic.interactions, drop_short_users=True)
    cfg = SequentialConfig(max_len=20, dim=32, layers=1, heads=2, dropout=0.1)
    fit = fit_sequential(synthetic, split, cfg, default_train_config(epochs=12, patience=1, progress=False), batch_size=32)
    assert fit.curve and all(np.isfinite(h["NDCG@10"]) for h in fit.curve)
    assert fit.result.best_metric == max(h["NDCG@10"] for h in fit.curve)
    assert len(fit.curve) <= 12 and fit.windows > 0
    seconds = [h["seconds"] for h in fit.curve]  # wall-clock at each validation, for a quality-against-time plot
    assert len(seconds) == len(fit.curve) >= 2 and all(b > a > 0 for a, b in zip(seconds, seconds[1:]))
    users = split.test["user_id"].to_numpy()[:5]
    scores = fit.scorer(users, np.tile(synthetic.item_ids, (5, 1)))
    assert scores.shape == (5, synthetic.n_items) and np.isfinite(scores).all()
    with pytest.raises(ValueError, match="not in the catalogue"):
        fit.scorer(users[:1], np.array([[10**9]]))
    # the learned model ranks the next item better than chance: HR@10 of 10/n_items
    from recbook.evaluation.protocol import evaluate, make_eval_set

    full = evaluate(fit.scorer, make_eval_set(synthetic, split, "test", 9), "full")
    assert full["HR@10"] > 2 * 10 / synthetic.n_items
    budget = fit_sequential(synthetic, split, cfg, default_train_config(epochs=50, patience=None, progress=False),
                            batch_size=32, max_seconds=0.01)
    assert len(budget.curve) == 1  # the time budget stopped it at the first evaluation


def test_cold_item_split(synthetic):
    df = synthetic.interactions
    cs = cold_item_split(df, 0.2)
    cold = set(cs.cold_items.tolist())
    first_seen = df.groupby("item_id")["timestamp"].min()
    assert first_seen[list(cold)].min() >= first_seen.drop(list(cold)).max() - 0  # the newest items
    for part in (cs.train, cs.valid, cs.test_warm, cs.cold_history):
        assert not part["item_id"].isin(cold).any()
    assert cs.test_cold["item_id"].isin(cold).all() and not cs.test_cold["user_id"].duplicated().any()
    merged = cs.cold_history.merge(cs.test_cold[["user_id", "timestamp"]], on="user_id", suffixes=("", "_cold"))
    assert (merged["timestamp"] <= merged["timestamp_cold"]).all()  # history is the past only
    assert set(cs.test_cold["user_id"]) <= set(cs.cold_history["user_id"])
    assert cs.warm().test is cs.test_warm and cs.sizes()["cold items"] == len(cold)
    with pytest.raises(ValueError, match="fraction"):
        cold_item_split(df, 1.5)


@pytest.mark.slow
def test_text_embeddings_match_sentence_transformers_and_are_cached(tmp_path, monkeypatch, synthetic, tokenizer):
    from recbook.models import backbone
    from recbook.models.backbone import default_model_dir

    small = synthetic.subset_items(synthetic.item_ids[:12]) if hasattr(synthetic, "subset_items") else synthetic
    vectors = item_text_embeddings(small, cache_dir=tmp_path, progress=False)
    assert vectors.shape == (small.n_items, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(default_model_dir()), device="cpu").encode(small.items["text"].tolist()[:8], normalize_embeddings=True)
    order = pd.Series(np.arange(small.n_items), index=small.item_ids)[small.items["item_id"].to_numpy()[:8]].to_numpy()
    assert np.allclose(vectors[order], ref, atol=1e-4)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))

    def no_model(*a, **k):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(backbone, "load_backbone", no_model)
    assert np.array_equal(item_text_embeddings(small, cache_dir=tmp_path, progress=False), vectors)
    files[0].write_bytes(b"garbage")  # a corrupt cache is recomputed, never trusted
    monkeypatch.undo()
    assert np.allclose(item_text_embeddings(small, cache_dir=tmp_path, progress=False), vectors, atol=1e-6)


def test_cold_eval_sets(synthetic):
    from recbook.evaluation.protocol import evaluate, make_cold_eval_set

    cs = cold_item_split(synthetic.interactions, 0.2)
    cat = make_cold_eval_set(synthetic, cs, 9)
    among = make_cold_eval_set(synthetic, cs, 9, negatives_from="cold")
    assert np.isin(among.negatives, cs.cold_items).all() and not np.isin(cat.negatives, cs.cold_items).all()
    assert "other cold items" in among.description and "cold items" in cat.description
    # a model that gives every cold item one score sits exactly at chance among cold items
    constant = lambda users, items: np.zeros(np.shape(items))  # noqa: E731
    assert evaluate(constant, among, "sampled")["AUC"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="negatives_from"):
        make_cold_eval_set(synthetic, cs, 9, negatives_from="warm")


def test_the_loop_says_why_it_stopped(synthetic):
    split = leave_last_out(synthetic.interactions, drop_short_users=True)
    cfg = SequentialConfig(max_len=10, dim=16, layers=1, heads=2)
    budget = fit_sequential(synthetic, split, cfg, default_train_config(epochs=5, patience=None, progress=False), max_seconds=0.01)
    assert budget.result.stop_reason == "time budget"


    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))

        def training_loss(self, batch):
            return (self.w ** 2).sum()

    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1])
    result = train_model(Tiny(), [{"x": torch.zeros(1)}] * 2, TrainConfig(epochs=5, patience=2, progress=False, amp="off"),
                         lambda m: {"NDCG@10": next(scores)})
    assert result.stop_reason == "patience" and result.stopped_early and result.best_metric == 0.5 and len(
        [h for h in result.history if "NDCG@10" in h]) == 3


def test_model_identity_changes_with_the_weights(tmp_path):
    from recbook.models.item_text import _model_identity

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a" * 100)
    first = _model_identity(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"b" * 100)  # same size, new weights (fine-tuned in place)
    assert _model_identity(str(tmp_path)) != first and first.startswith(tmp_path.name)
    assert _model_identity("org/some-hub-model") == "org/some-hub-model"


@pytest.mark.parametrize("features", ["text", "hybrid"])
def test_items_unknown_at_training_are_not_negatives_of_the_training_softmax(features):
    """A cold item (not in training) with a text vector was a negative at every step: its text was pushed down before
    anyone could like it. Its vector must not move the training loss (and gets no gradient)."""
    known = np.ones(20, dtype=bool)
    known[[4, 11, 17]] = False
    windows = training_windows({u: np.random.default_rng(u).choice([i for i in range(1, 21) if known[i - 1]], 8) for u in range(6)}, 6, "causal")
    model = _tiny("causal", features, known=known).eval()  # eval: no random ID or history dropout between the two losses
    before = model.training_loss(windows).item()
    with torch.no_grad():
        model.text_features[[5, 12, 18]] *= 50.0  # rows of the unknown items (row = index + 1)
    assert model.training_loss(windows).item() == pytest.approx(before, rel=1e-6)
    with torch.no_grad():
        model.text_features[[2]] *= 50.0  # a known item's text does move it
    assert model.training_loss(windows).item() != pytest.approx(before, rel=1e-6)


def test_a_target_the_model_does_not_know_is_skipped_not_infinite():
    """An update whose item table is frozen (LoRA) meets targets that are new items: masked out of the softmax, they
    must not make the loss infinite; they are skipped."""
    known = np.ones(20, dtype=bool)
    known[[4, 11]] = False
    model = _tiny("causal", known=known).eval()
    windows = training_windows({0: np.array([1, 2, 5, 3, 12]), 1: np.array([2, 3, 4])}, 6, "causal")  # items 5, 12 unknown
    loss = model.training_loss(windows)
    assert torch.isfinite(loss)
    only_unknown = training_windows({0: np.array([5, 12])}, 6, "causal")
    assert model.training_loss(only_unknown).item() == 0.0


def test_the_text_loss_adds_a_softmax_over_the_text_only_table():
    """text_loss (hybrid): loss = softmax over ID + text vectors, plus w × the same softmax over the text vectors alone
    — what scores an item never seen in training. Checked against the two softmaxes computed by hand; id/text models
    have no second table, and a negative weight is refused."""
    windows = training_windows({u: np.random.default_rng(u).choice(np.arange(1, 21), 8) for u in range(6)}, 6, "causal")
    base = _tiny("causal", "hybrid").eval()
    weighted = _tiny("causal", "hybrid").eval()
    weighted.config.text_loss = 0.7
    with torch.no_grad():
        hidden = base.encode(windows["input"], base.item_table())
        valid = windows["target"] > 0
        text_table = base.text_proj(base.text_features)
        aux = torch.nn.functional.cross_entropy(hidden[valid] @ text_table[1:21].T, windows["target"][valid] - 1, reduction="none")
        per_seq = torch.zeros(len(hidden)).index_add_(0, valid.nonzero()[:, 0], aux) / valid.sum(1)
        expected = base.training_loss(windows) + 0.7 * per_seq.mean()
        assert weighted.training_loss(windows).item() == pytest.approx(expected.item(), rel=1e-5)
    id_model = _tiny("causal", "id").eval()
    before = id_model.training_loss(windows).item()
    id_model.config.text_loss = 1.0
    assert id_model.training_loss(windows).item() == before  # no text table: no second softmax
    with pytest.raises(ValueError, match="text_loss"):
        SequentialConfig(item_features="hybrid", text_loss=-1.0)


@pytest.mark.parametrize("objective", ["causal", "cloze"])
def test_attention_allowed_equals_the_rule_written_out_position_by_position(objective):
    from recbook.models.sequential import attention_allowed

    seq = torch.tensor([[0, 0, 5, 7, 2], [3, 1, 4, 1, 5], [0, 0, 0, 0, 9]])
    got = attention_allowed(seq, objective)
    for b in range(seq.shape[0]):
        for i in range(5):
            for j in range(5):
                expected = i == j or (seq[b, j] != 0 and (objective == "cloze" or j <= i))
                assert bool(got[b, i, j]) == expected, (b, i, j)
    model = SequentialRecommender(10, SequentialConfig(max_len=5, dim=8, heads=2, objective=objective)).eval()
    assert torch.equal(model._inputs(seq, torch.zeros(3, 5, 8))[1], got)  # what the model's blocks use
    with pytest.raises(ValueError, match="objective must be 'causal' or 'cloze'"):
        attention_allowed(seq, "bidirectional")
