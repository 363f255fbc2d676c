"""recbook.compress.catalogue: the catalogue encoder, its bench and the tables of what variants keep."""

import numpy as np
import pandas as pd
import pytest
import torch


@pytest.fixture(scope="module")
def bench(synthetic, tiny_backbone, tmp_path_factory):
    from recbook.compress.catalogue import catalogue_bench

    return catalogue_bench(synthetic, cold_fraction=0.2, epochs=2, n_negatives=19, encoder=str(tiny_backbone),
                           cache_dir=tmp_path_factory.mktemp("bench-cache"), progress=False)


def test_sentence_encoder_matches_mean_pooling_by_hand(tiny_backbone):
    from transformers import AutoModel, AutoTokenizer

    from recbook.compress.catalogue import load_sentence_encoder
    from recbook.models.item_text import embed_texts

    model, tok = load_sentence_encoder(str(tiny_backbone))
    texts = ["a short title", "a much longer title about a movie (1995). Genres: Drama, Comedy.", "x"]
    ours = embed_texts(model, tok, texts, batch_size=2)
    bert, tok2 = AutoModel.from_pretrained(tiny_backbone).eval(), AutoTokenizer.from_pretrained(tiny_backbone)
    for i, t in enumerate(texts):  # one text at a time: no padding at all
        enc = tok2(t, return_tensors="pt")
        with torch.no_grad():
            h = bert(**enc).last_hidden_state[0].mean(0)
        np.testing.assert_allclose(ours[i], (h / h.norm()).numpy(), atol=1e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)


def test_embed_texts_errors(tiny_backbone):
    from recbook.compress.catalogue import load_sentence_encoder
    from recbook.models.item_text import embed_texts

    model, tok = load_sentence_encoder(str(tiny_backbone))
    with pytest.raises(ValueError, match="no texts"):
        embed_texts(model, tok, [])
    with pytest.raises(ValueError, match=r"\(batch, dim\)"):
        embed_texts(lambda ids, mask, types: torch.zeros(len(ids)), tok, ["a", "b"])


def test_bench_reference_and_fp32_per_user(bench):
    info = bench.info
    assert info["cache"] == "trained now" and info["cold_users"] == len(bench.cold_set.heldout) > 0
    fp32 = bench.measure(bench.teacher)
    np.testing.assert_allclose(bench.embed(bench.teacher), bench.reference, atol=1e-6)
    assert fp32["warm"].attrs["cosine_to_fp32"] == pytest.approx(1.0, abs=1e-6)
    assert set(fp32) == {"warm", "cold"}
    assert len(fp32["warm"]) == len(bench.warm_set.heldout) and len(fp32["cold"]) == len(bench.cold_set.heldout)
    assert fp32["cold"]["AUC"].between(0, 1).all()
    # the cold pick is ranked among other new items only: no negative is an item the recommender was trained on
    assert bench.cold_set.negatives_from == "cold" and np.isin(bench.cold_set.negatives, bench.cold.cold_items).all()
    pop = bench.popularity_per_user()
    assert list(pop["warm"].index) == list(fp32["warm"].index)


def test_bench_cache_is_reused_and_damage_retrains(synthetic, tiny_backbone, tmp_path):
    from recbook.compress.catalogue import catalogue_bench

    kwargs = dict(cold_fraction=0.2, epochs=1, n_negatives=19, encoder=str(tiny_backbone), cache_dir=tmp_path, progress=False)
    first = catalogue_bench(synthetic, **kwargs)
    second = catalogue_bench(synthetic, **kwargs)
    assert first.info["cache"] == "trained now" and second.info["cache"] == "hit"
    a, b = first.measure(first.teacher), second.measure(second.teacher)
    pd.testing.assert_frame_equal(a["warm"], b["warm"])
    assert not list(tmp_path.glob("*.partial"))  # written atomically: no leftovers
    (next(tmp_path.iterdir()) / "model.safetensors").write_bytes(b"not a safetensors file")
    assert catalogue_bench(synthetic, **kwargs).info["cache"] == "trained now"
    assert catalogue_bench(synthetic, **kwargs).info["cache"] == "hit"  # the damaged copy was replaced


def test_recommender_with_swaps_features_on_a_copy(bench):
    emb = bench.reference[::-1].copy()
    model = bench.recommender_with(emb)
    assert torch.equal(model.text_features[1:-1], torch.from_numpy(emb))
    assert torch.equal(bench.recommender.text_features[1:-1], torch.from_numpy(bench.reference))
    with pytest.raises(ValueError, match="shape"):
        bench.recommender_with(emb[:, :5])
    bad = emb.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bench.recommender_with(bad)


def test_compressed_variants_run_through_the_bench(bench, tmp_path):
    from recbook.compress.bench import time_variants
    from recbook.compress.variants import make_variant

    variants = [make_variant(k, bench.teacher, tmp_path, dataset=bench.dataset, tokenizer=bench.tokenizer)
                for k in ("fp32", "int8", "onnx-int8", "trim-int8")]
    outs = {v.name: bench.embed(v.model) for v in variants}
    assert np.allclose(outs["fp32"], bench.reference, atol=1e-5)
    for name in ("int8", "onnx-int8", "trim-int8"):
        cos = (outs[name] * bench.reference).sum(1)
        assert cos.min() > 0.9, name
    timing = time_variants(variants, bench.latency_batches((4,)), repeats=1, warmup=1, progress=False)
    assert set(timing["variant"]) == {v.name for v in variants}


def test_kept_table_against_stats(bench):
    from recbook.compress.catalogue import kept_table, kept_text_table, min_kept_low
    from recbook.evaluation.stats import mean_ci, paired_comparison, ratio_ci

    fp32 = bench.measure(bench.teacher)
    noisy = bench.measure(lambda ids, mask, types: torch.nn.functional.normalize(bench.teacher(ids, mask, types) + 0.3 * torch.randn(len(ids), bench.reference.shape[1], generator=torch.Generator().manual_seed(int(ids.sum()))), dim=-1))
    table = kept_table({"fp32": fp32, "noisy": noisy}, "fp32", n_boot=500)
    assert table.loc["fp32", "warm NDCG@10 kept"] == 1.0
    x, ref = noisy["cold"]["AUC"], fp32["cold"]["AUC"]
    assert table.loc["noisy", "cold AUC"] == pytest.approx(mean_ci(x, n_boot=500).mean)
    assert table.loc["noisy", "cold AUC Δ low"] == pytest.approx(paired_comparison(x, ref, n_boot=500, n_permutations=1000).diff.low)
    assert table.loc["noisy", "cold AUC kept high"] == pytest.approx(ratio_ci(x, ref, n_boot=500).high)
    assert min_kept_low(table)["noisy"] == min(table.loc["noisy", "warm AUC kept low"], table.loc["noisy", "cold AUC kept low"])
    assert "warm NDCG@10 kept" in table.columns  # reported, not judged
    text = kept_text_table(table)
    assert text.loc["fp32", "cold AUC kept"] == "1.000 [1.000, 1.000]"
    assert list(kept_text_table(table, show=("kept",)).columns) == ["warm NDCG@10 kept", "warm AUC kept", "cold AUC kept"]
    with pytest.raises(ValueError, match="show"):
        kept_text_table(table, show=("median",))
    with pytest.raises(KeyError, match="reference"):
        kept_table({"fp32": fp32}, "int8")
    with pytest.raises(KeyError, match="no 'cold' results"):
        kept_table({"fp32": fp32, "x": {"warm": fp32["warm"]}}, "fp32")


def test_distillation_moves_the_student_towards_the_teacher(bench):
    from recbook.compress.catalogue import distill_sentence_encoder
    from recbook.compress.distill import make_student
    from recbook.models.item_text import embed_texts

    texts = bench.texts_of(bench.warm_items)
    start = make_student(bench.teacher, [0])
    with torch.no_grad():  # knock the copied layer far from the teacher, so there is something to learn back
        g = torch.Generator().manual_seed(0)
        for name, p in start.named_parameters():
            if "encoder.layer" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    before = embed_texts(start, bench.tokenizer, texts)
    student, losses = distill_sentence_encoder(bench.teacher, bench.tokenizer, texts, student=start, epochs=8, lr=3e-3, progress=False)
    after = embed_texts(student, bench.tokenizer, texts)
    target = embed_texts(bench.teacher, bench.tokenizer, texts)
    assert len(student.encoder.encoder.layer) == 1
    assert losses[-1] < losses[0]
    assert (after * target).sum(1).mean() > (before * target).sum(1).mean()
    assert len(bench.teacher.encoder.encoder.layer) == 2  # the teacher is untouched


def test_distillation_keeps_pruning_masks(bench):
    from recbook.compress.catalogue import distill_sentence_encoder
    from recbook.compress.prune import magnitude_prune, make_permanent, sparsity_report

    pruned = magnitude_prune(bench.teacher, 0.5, "global", permanent=False)
    pruned, _ = distill_sentence_encoder(bench.teacher, bench.tokenizer, bench.texts_of(bench.warm_items)[:20], student=pruned,
                                         epochs=2, lr=1e-3, progress=False)
    pruned = make_permanent(pruned)
    assert sparsity_report(pruned, include_embeddings=False).loc["total", "sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_distillation_errors(bench):
    from recbook.compress.catalogue import distill_sentence_encoder

    with pytest.raises(ValueError, match="at least 2 texts"):
        distill_sentence_encoder(bench.teacher, bench.tokenizer, ["one"], progress=False)
    with pytest.raises(ValueError, match="epochs"):
        distill_sentence_encoder(bench.teacher, bench.tokenizer, ["a", "b"], epochs=0, progress=False)


def test_bench_errors(synthetic, tiny_backbone, tmp_path):
    from recbook.compress.catalogue import catalogue_bench, catalogue_texts_in_order

    with pytest.raises(ValueError, match="cold_fraction"):
        catalogue_bench(synthetic, cold_fraction=1.5, encoder=str(tiny_backbone), cache_dir=tmp_path, progress=False)
    import copy

    no_text = copy.copy(synthetic)
    no_text.items = synthetic.items.drop(columns=["text"])
    with pytest.raises(ValueError, match="'text' column"):
        catalogue_texts_in_order(no_text)


def test_measure_variants_table(bench, tmp_path):
    from recbook.compress.catalogue import measure_variants
    from recbook.compress.variants import make_variant

    variants = [make_variant(k, bench.teacher, tmp_path) for k in ("fp32", "int8")]
    table, per_user = measure_variants(bench, variants, batch_sizes=(2, 4), repeats=2, progress=False, n_boot=200)
    assert list(table.index) == ["fp32", "int8"] and set(per_user) == {"fp32", "int8"}
    assert table.loc["fp32", "smaller"] == 1.0 and table.loc["int8", "smaller"] > 3
    assert table.loc["fp32", "cosine"] == pytest.approx(1.0, abs=1e-6) and table.loc["int8", "cosine"] > 0.9
    assert bench.teacher.encoder.pooler is None  # unused by mean pooling: dropped
    assert table.loc["fp32", "speed_b4"] == "baseline" and table.loc["fp32", "faster_b4"] == 1.0
    assert table.loc["int8", "speed_b4"] == "too few rounds" and np.isnan(table.loc["int8", "faster_b4 low"])  # 2 repeats
    for col in ("p50_ms_b2", "p50_ms_b4", "faster_b4", "texts_per_s_b4", "warm NDCG@10 kept low", "cold AUC Δ"):
        assert np.isfinite(table[col].astype(float)).all(), col
    with pytest.raises(ValueError, match="unique"):
        measure_variants(bench, variants + variants[:1], progress=False)
    with pytest.raises(ValueError, match="no variants"):
        measure_variants(bench, [], progress=False)


def test_distillation_freezes_embeddings_unless_asked(bench):
    from recbook.compress.catalogue import distill_sentence_encoder
    from recbook.compress.distill import make_student

    texts = bench.texts_of(bench.warm_items)[:16]
    for train_embeddings in (False, True):
        student = make_student(bench.teacher, [0])
        before = student.encoder.embeddings.word_embeddings.weight.detach().clone()
        layer_before = student.encoder.encoder.layer[0].output.dense.weight.detach().clone()
        distill_sentence_encoder(bench.teacher, bench.tokenizer, texts, student=student, epochs=1, lr=1e-2,
                                 train_embeddings=train_embeddings, progress=False)
        moved = not torch.equal(before, student.encoder.embeddings.word_embeddings.weight)
        assert moved == train_embeddings
        assert not torch.equal(layer_before, student.encoder.encoder.layer[0].output.dense.weight)


def test_deployed_keeps_the_known_items_fp32_vectors_and_gives_new_items_the_variants(bench):
    noisy = bench.reference + 0.5
    mixed = bench.deployed(noisy)
    new = np.isin(bench.dataset.item_ids, bench.cold.cold_items)
    assert new.any() and (~new).any()
    np.testing.assert_array_equal(mixed[new], noisy[new].astype(np.float32))
    np.testing.assert_array_equal(mixed[~new], bench.reference[~new])
    with pytest.raises(ValueError, match="must have shape"):
        bench.deployed(noisy[:3])


def test_refresh_cost_is_items_over_throughput_times_threads():
    from recbook.compress.catalogue import refresh_cost

    table = pd.DataFrame({"texts_per_s_b64": [100.0, 400.0]}, index=["fp32", "int8"])
    table.attrs["threads"] = 2
    cost = refresh_cost(table, items=(1_000_000,), price_per_cpu_hour=0.05)
    assert cost.loc["fp32", "CPU-hours, 1 M items"] == pytest.approx(1e6 / 100 * 2 / 3600)
    assert cost.loc["int8", "CPU-hours, 1 M items"] == pytest.approx(cost.loc["fp32", "CPU-hours, 1 M items"] / 4)
    assert cost.loc["fp32", "cost, 1 M items"] == pytest.approx(cost.loc["fp32", "CPU-hours, 1 M items"] * 0.05)
    with pytest.raises(KeyError, match="texts_per_s_b1"):
        refresh_cost(table, batch=1)
    assert refresh_cost(table, threads=1).loc["fp32", "CPU-hours, 1 M items"] == pytest.approx(1e6 / 100 / 3600)
    with pytest.raises(ValueError, match="threads"):
        refresh_cost(pd.DataFrame({"texts_per_s_b64": [100.0]}, index=["fp32"]))  # no attrs, no threads=
    table.loc["int8", "texts_per_s_b64"] = 0.0
    with pytest.raises(ValueError, match="must be positive"):
        refresh_cost(table)
