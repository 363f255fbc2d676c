import numpy as np
import pytest
import torch

from recbook.data import leave_last_out, make_synthetic
from recbook.models.backbone import load_backbone
from recbook.models.item_text import encode_texts
from recbook.models.text_encoder import TopLayers, cache_lower_layers, finetune_item_encoder, next_item_pairs

TEXTS = ["Toy Story (1995). Genres: Animation.", "Heat (1995). Genres: Action, Crime, Thriller.", "Babe", "A much longer title here"]


@pytest.mark.parametrize("trainable", [0, 1, 2])
def test_untrained_top_layers_reproduce_the_frozen_sentence_vectors(tiny_backbone, trainable):
    """Caching the lower layers and running the top ones equals the whole encoder (mean pooling, L2 norm)."""
    encoder, tokenizer = load_backbone(tiny_backbone)
    states, mask = cache_lower_layers(encoder, tokenizer, TEXTS, 2 - trainable, max_length=16)
    ours = TopLayers(encoder, trainable).embed(states, mask)
    reference = encode_texts(TEXTS, encoder, tokenizer, max_length=16)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_length_buckets_give_the_same_vectors_and_gradients_as_one_padded_batch(tiny_backbone):
    """TopLayers runs texts in groups sorted by length, each cut to its own longest text: the vectors, their order and
    the gradients are those of the whole batch padded to its longest text."""
    encoder, tokenizer = load_backbone(tiny_backbone)
    texts = [" ".join(["word"] * n) for n in (1, 9, 3, 14, 2, 7, 5, 11, 4, 6)]
    states, mask = cache_lower_layers(encoder, tokenizer, texts, 1, max_length=16)
    top = TopLayers(encoder, 1)
    whole, grouped = top(states, mask, buckets=1), top(states, mask, buckets=3)
    torch.testing.assert_close(grouped, whole, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(whole)
    grads = []
    for buckets in (1, 3):
        top.zero_grad()
        (top(states, mask, buckets=buckets) * weights).sum().backward()
        grads.append([p.grad.clone() for p in top.parameters()])
    for one, three in zip(*grads):
        torch.testing.assert_close(three, one, atol=1e-5, rtol=1e-4)


def test_layer_counts_are_checked(tiny_backbone):
    encoder, tokenizer = load_backbone(tiny_backbone)
    with pytest.raises(ValueError, match="between 0 and 2"):
        TopLayers(encoder, 3)
    with pytest.raises(ValueError, match="between 0 and 2"):
        cache_lower_layers(encoder, tokenizer, TEXTS, -1)
    with pytest.raises(TypeError, match="BERT-style"):
        TopLayers(torch.nn.Linear(2, 2), 1)


def test_next_item_pairs():
    contexts, targets = next_item_pairs({1: np.array([5, 6, 7]), 2: np.array([9])}, context=2)
    np.testing.assert_array_equal(targets, [6, 7])
    np.testing.assert_array_equal(contexts, [[-1, 5], [5, 6]])
    with pytest.raises(ValueError, match="two or more"):
        next_item_pairs({1: np.array([3])}, 2)


def test_finetuning_learns_what_follows_what(tiny_backbone):
    """On the synthetic catalogue the contrastive loss falls and the vectors move; 0 trainable layers leaves them alone."""
    ds = make_synthetic(seed=0, n_users=60, n_items=40)
    split = leave_last_out(ds.interactions, drop_short_users=True)
    encoder, tokenizer = load_backbone(tiny_backbone)
    texts = ds.items.set_index("item_id").loc[ds.item_ids, "text"].tolist()
    fit = finetune_item_encoder(encoder, tokenizer, texts, split.train, ds.item_ids, trainable_layers=1, steps=30, batch_size=32,
                                lr=1e-3, max_length=24)
    assert np.mean(fit.losses[-3:]) < fit.losses[0]
    assert abs(fit.losses[0] - fit.chance_loss) < 1.0  # an untrained top starts near uniform scores over the batch
    assert fit.vectors.shape == (ds.n_items, 32) and not np.allclose(fit.vectors, fit.frozen_vectors)
    assert fit.trainable_parameters == sum(p.numel() for p in encoder.encoder.layer[-1].parameters())
    frozen = finetune_item_encoder(encoder, tokenizer, texts, split.train, ds.item_ids, trainable_layers=0, steps=5)
    np.testing.assert_allclose(frozen.vectors, frozen.frozen_vectors)
