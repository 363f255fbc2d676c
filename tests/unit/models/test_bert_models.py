import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

from recbook.data import PairCollator, encode_pairs, leave_last_out, make_synthetic
from recbook.models.cross_encoder import CrossEncoder, CrossEncoderScorer, mean_pool, predict_pairs
from recbook.models.two_tower import TwoTower, TwoTowerCollator, TwoTowerScorer, tokenize_two_tower, tower_vectors


@pytest.fixture(scope="module")
def small():
    ds = make_synthetic(seed=2, n_users=20, n_items=30)
    return ds, leave_last_out(ds.interactions)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 2.0]]


def test_cross_encoder_forward_loss_and_round_trip(tiny_backbone, tokenizer, tmp_path):
    torch.manual_seed(0)
    model = CrossEncoder(AutoModel.from_pretrained(tiny_backbone)).eval()
    enc = encode_pairs(["a b c", "d"], ["x y", "z z z z"], tokenizer, 32)
    batch = PairCollator(tokenizer)([{k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")} for i in range(2)])
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert logits.shape == (2,)
    labels = torch.tensor([1.0, 0.0])
    torch.testing.assert_close(model.training_loss({**batch, "labels": labels}), F.binary_cross_entropy_with_logits(logits, labels))
    # predictions come back in input order although they are computed sorted by length
    np.testing.assert_allclose(predict_pairs(model, enc, PairCollator(tokenizer), batch_size=1), logits.detach().numpy(), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "ce", tokenizer)
    again = CrossEncoder.load(tmp_path / "ce").eval()
    torch.testing.assert_close(again(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]), logits)
    with pytest.raises(FileNotFoundError, match="recbook_model.json"):
        CrossEncoder.load(tmp_path)
    with pytest.raises(ValueError, match="pooling"):
        CrossEncoder(model.encoder, pooling="max")


def test_cross_encoder_scorer_shape(tiny_backbone, tokenizer, small):
    ds, sp = small
    model = CrossEncoder(AutoModel.from_pretrained(tiny_backbone))
    scorer = CrossEncoderScorer(model, tokenizer, ds, sp.train, max_length=48)
    items = np.array([[1, 2, 3], [4, 5, 6]])
    scores = scorer(np.array([1, 2]), items)
    assert scores.shape == (2, 3) and np.isfinite(scores).all() and scorer.pairs_scored == 6


def test_two_tower_in_batch_softmax_and_duplicates(tiny_backbone, tokenizer):
    torch.manual_seed(0)
    model = TwoTower(AutoModel.from_pretrained(tiny_backbone), temperature=0.1).eval()
    texts = pd.DataFrame({"history_text": ["a b", "c", "d e f"], "item_text": ["x", "y y", "x"], "item_id": [7, 8, 7], "label": [1, 1, 1]})
    batch = TwoTowerCollator(tokenizer)(tokenize_two_tower(texts, tokenizer))
    u = model.embed(batch["history_input_ids"], batch["history_attention_mask"])
    v = model.embed(batch["item_input_ids"], batch["item_attention_mask"])
    torch.testing.assert_close(u.norm(dim=-1), torch.ones(3))
    logits = u @ v.T / 0.1
    logits[0, 2] = logits[2, 0] = float("-inf")  # item 7 twice: never its own negative
    torch.testing.assert_close(model.training_loss(batch), F.cross_entropy(logits, torch.arange(3)))
    with pytest.raises(ValueError, match="temperature"):
        TwoTower(model.encoder, temperature=0)


def test_two_tower_user_vector_uses_the_whole_history_even_the_first_catalogue_item(tiny_backbone, tokenizer, small):
    from recbook.data.text import history_entries

    ds, sp = small
    model = TwoTower(AutoModel.from_pretrained(tiny_backbone))
    first, second, third = ds.item_ids[:3]
    history = pd.DataFrame({"user_id": [7, 7, 7, 8], "item_id": [second, first, third, second], "timestamp": [1, 2, 3, 1]})
    scorer = TwoTowerScorer(model, tokenizer, ds, history, max_length=48)
    entries = history_entries(ds, "title+genres")  # how the scorer writes history items; most recent first
    text = " ; ".join(entries[j] for j in (2, 0, 1))
    direct = tower_vectors(model, [text, entries[1]], tokenizer, 48)
    np.testing.assert_allclose(scorer._users(np.array([7, 8])), direct, rtol=1e-5, atol=1e-6)


def test_two_tower_scorer_uses_cached_item_vectors(tiny_backbone, tokenizer, small, tmp_path):
    ds, sp = small
    model = TwoTower(AutoModel.from_pretrained(tiny_backbone))
    scorer = TwoTowerScorer(model, tokenizer, ds, sp.train, max_length=48)
    assert scorer.item_vectors.shape == (ds.n_items, 32)
    items = np.array([[1, 2, 3], [3, 2, 1]])
    s = scorer(np.array([1, 1]), items)
    np.testing.assert_allclose(s[0], s[1][::-1], rtol=1e-6)
    direct = tower_vectors(model, ds.items["text"].tolist()[:3], tokenizer, 48)
    np.testing.assert_allclose(scorer.item_vectors[:3], direct, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="catalogue"):
        scorer(np.array([1]), np.array([[10_000]]))
    model.save(tmp_path / "tt", tokenizer)
    assert TwoTower.load(tmp_path / "tt").temperature == model.temperature
    with pytest.raises(ValueError, match="not a two-tower model"):
        (tmp_path / "tt" / "recbook_model.json").write_text('{"model": "cross-encoder"}')
        TwoTower.load(tmp_path / "tt")


def test_two_tower_loss_corrects_for_popularity_sampled_negatives():
    """Regression (06's two-tower recommended the least popular films): in-batch negatives are drawn by popularity,
    so the loss must subtract each column's log sampling probability (logQ). A popular column's logit is lowered in
    training; with the correction, a model that scores items by popularity alone is no longer rewarded for ranking
    popular items last."""
    import torch
    import torch.nn.functional as F

    from recbook.models.two_tower import TwoTower, item_log_frequency

    class Fixed(TwoTower):
        def __init__(self, vectors):
            torch.nn.Module.__init__(self)
            self.vectors, self.temperature = vectors, 1.0

        def embed(self, input_ids, attention_mask):
            return self.vectors[input_ids[:, 0]]

    torch.manual_seed(0)
    vectors = F.normalize(torch.randn(6, 4), dim=-1)
    model = Fixed(vectors)
    batch = {"history_input_ids": torch.tensor([[0], [1], [2]]), "history_attention_mask": torch.ones(3, 1, dtype=torch.long),
             "item_input_ids": torch.tensor([[3], [4], [5]]), "item_attention_mask": torch.ones(3, 1, dtype=torch.long),
             "item_id": torch.tensor([10, 11, 12])}
    plain = model.training_loss(batch)
    logq = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    corrected = model.training_loss({**batch, "item_logq": logq})
    logits = vectors[[0, 1, 2]] @ vectors[[3, 4, 5]].T - logq[None, :]
    assert torch.isclose(corrected, F.cross_entropy(logits, torch.arange(3)))
    assert not torch.isclose(corrected, plain)
    freq = item_log_frequency([1, 1, 1, 2])
    assert np.isclose(freq[1], np.log(0.75)) and np.isclose(freq[2], np.log(0.25))


# ------------------------------------------------------------------ 07's BERT models lose to popularity: bug or budget?
# Notebook 07 records both below popularity on MovieLens (cross-encoder after 300 steps, two-tower after 60) and names
# the budget as the cause. These tests separate the two: on a planted text signal (the candidate's genre matches the
# history's) the same models, losses and scoring code learn it — so a loss to popularity is not the pipeline failing.
GENRES = ["comedy", "drama", "horror", "western", "musical", "war", "romance", "thriller"]


def _planted_pairs(rng, n):
    history, candidate, label = [], [], []
    for _ in range(n):
        genre, match = rng.choice(GENRES), rng.random() < 0.5
        other = rng.choice([g for g in GENRES if g != genre])
        history.append(f"films i watched : {genre} , {genre}")
        candidate.append(f"a {genre if match else other} film")
        label.append(float(match))
    return history, candidate, np.array(label)


def test_the_cross_encoder_learns_a_planted_signal_given_the_steps(tiny_backbone, tokenizer):
    """Near chance after 60 steps (07's old budget), well above it after 700: the same code, more steps."""
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = CrossEncoder(AutoModel.from_pretrained(tiny_backbone))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    collate = PairCollator(tokenizer)
    held_out = _planted_pairs(np.random.default_rng(1), 400)
    encoded = encode_pairs(held_out[0], held_out[1], tokenizer, 32)

    def auc():
        model.eval()
        scores = predict_pairs(model, encoded, collate)
        model.train()
        return roc_auc_score(held_out[2], scores)

    losses, early = [], None
    for step in range(1, 701):
        history, candidate, label = _planted_pairs(rng, 32)
        enc = encode_pairs(history, candidate, tokenizer, 32)
        batch = collate([{k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")} for i in range(32)])
        loss = model.training_loss({**batch, "labels": torch.tensor(label, dtype=torch.float32)})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step == 60:
            early = auc()
    late = auc()
    assert late > 0.8 and late > early + 0.1, (early, late)
    assert np.mean(losses[-50:]) < np.log(2) - 0.15  # below the loss of predicting the base rate (half are positives)


def test_the_two_tower_learns_a_planted_signal(tiny_backbone, tokenizer):
    """In-batch softmax over eight genres: each history's own genre ranks first for every genre after training."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = TwoTower(AutoModel.from_pretrained(tiny_backbone), temperature=0.1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    collate = TwoTowerCollator(tokenizer)
    for _ in range(150):
        order = rng.permutation(GENRES)
        frame = pd.DataFrame({"history_text": [f"films i watched : {g} , {g}" for g in order], "item_text": [f"a {g} film" for g in order],
                              "item_id": np.arange(len(order)), "label": 1})
        loss = model.training_loss(collate(tokenize_two_tower(frame, tokenizer)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    users = tower_vectors(model, [f"films i watched : {g} , {g}" for g in GENRES], tokenizer)
    items = tower_vectors(model, [f"a {g} film" for g in GENRES], tokenizer)
    assert ((users @ items.T).argmax(axis=1) == np.arange(len(GENRES))).all()
    assert loss.item() < np.log(len(GENRES)) / 4  # chance is log 8
