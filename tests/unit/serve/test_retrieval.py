"""recbook.serve.retrieval: exact top-N search checked against a brute-force sort, approximate (faiss) indexes checked
against the exact one, exclusions, padding, the benchmark table and bad input."""

import numpy as np
import pytest

from recbook.serve.retrieval import ExactIndex, FaissIndex, ann_benchmark, build_index, neighbour_recall, synthetic_catalogue

KINDS = ["exact", "hnsw", "ivf"]


def test_exact_index_matches_a_full_sort():
    rng = np.random.default_rng(0)
    vectors, queries = rng.normal(size=(500, 16)), rng.normal(size=(7, 16))
    scores, indices = ExactIndex(vectors).search(queries, 10)
    full = queries @ vectors.T
    expected = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_exclusions_and_small_catalogues(kind):
    vectors = np.eye(4, dtype=np.float32)
    index = build_index(vectors, kind)
    scores, indices = index.search([[4, 3, 2, 1]], 3, exclude=[np.array([0])])
    assert indices.tolist() == [[1, 2, 3]] and scores[0, 0] == 3
    scores, indices = index.search([[1, 1, 1, 1]], 6, exclude=[[0, 1]])
    assert indices[0, :2].tolist() in ([2, 3], [3, 2]) and indices[0, 2:].tolist() == [-1] * 4 and np.isinf(scores[0, 2:]).all()
    scores, indices = index.search([[4, 3, 2, 1]], 6)
    assert indices.tolist() == [[0, 1, 2, 3, -1, -1]] and np.isneginf(scores[0, 4:]).all()


@pytest.fixture(scope="module")
def catalogue():
    return synthetic_catalogue(n_items=3000, dim=16, n_queries=100, n_clusters=30, seed=0)


def test_hnsw_recall_is_high_and_exact_recall_is_one(catalogue):
    items, queries = catalogue
    _, truth = ExactIndex(items).search(queries, 10)
    _, again = build_index(items, "exact").search(queries, 10)
    assert neighbour_recall(again, truth, 10).tolist() == [1.0] * len(queries)
    _, found = FaissIndex(items, "hnsw").search(queries, 10)
    assert neighbour_recall(found, truth, 10).mean() >= 0.95
    _, full_probe = FaissIndex(items, "ivf", nlist=20, nprobe=20).search(queries, 10)  # every cluster visited: exact
    assert neighbour_recall(full_probe, truth, 10).mean() == 1.0


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_honour_exclusions(catalogue, kind):
    items, queries = catalogue
    exact = ExactIndex(items)
    _, seen = exact.search(queries, 40)  # exclude each query's 40 best items: the index must dig deeper
    exclude = [row for row in seen]
    _, truth = exact.search(queries, 10, exclude=exclude)
    scores, found = build_index(items, kind).search(queries, 10, exclude=exclude)
    assert found.shape == (len(queries), 10) and (found >= 0).all()
    assert not any(np.isin(f, e).any() for f, e in zip(found, exclude))
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    assert neighbour_recall(found, truth, 10).mean() >= 0.8


def test_neighbour_recall_counts_overlap_and_ignores_padding():
    approx = np.array([[1, 2, 3], [7, -1, -1], [-1, -1, -1]])
    exact = np.array([[3, 2, 9], [7, 8, -1], [-1, -1, -1]])
    np.testing.assert_allclose(neighbour_recall(approx, exact, 3), [2 / 3, 1 / 2, 1.0])
    np.testing.assert_allclose(neighbour_recall(approx, exact, 1), [0.0, 1.0, 1.0])


def test_ann_benchmark_table(catalogue):
    table = ann_benchmark(n_items=2000, dim=16, n_queries=50, k=10, n_single=10, n_clusters=20,
                          kinds=("exact", "hnsw", ("ivf, 4 probes", "ivf", {"nprobe": 4})))
    assert list(table.index) == ["exact", "hnsw", "ivf, 4 probes"]
    assert table.loc["exact", "recall@10"] == 1.0
    assert ((table["recall_ci_low"] >= 0) & (table["recall_ci_low"] <= table["recall@10"])
            & (table["recall@10"] <= table["recall_ci_high"]) & (table["recall_ci_high"] <= 1)).all()
    assert (table[["build_s", "batch_ms_per_query", "single_ms_per_query"]] >= 0).all().all()
    assert (table["memory_bytes"] >= 2000 * 16 * 4).all()
    assert table.loc["ivf, 4 probes", "params"]["nprobe"] == 4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call, match", [
    (lambda i: i.search(np.ones((2, 3)), 5), "dimensions"),
    (lambda i: i.search(np.ones((2, 4)), 0), "k must be"),
    (lambda i: i.search(np.ones((2, 4)), 2, exclude=[[0]]), "exclude has 1"),
    (lambda i: i.search(np.full((1, 4), np.nan), 2), "NaN"),
])
def test_bad_input_is_named(kind, call, match):
    with pytest.raises(ValueError, match=match):
        call(build_index(np.random.default_rng(0).normal(size=(5, 4)), kind))


@pytest.mark.parametrize("build, match", [
    (lambda: ExactIndex(np.ones(5)), "vectors must be a non-empty 2-d array"),
    (lambda: build_index(np.ones((5, 4)), "annoy"), "kind must be one of"),
    (lambda: FaissIndex(np.ones((5, 4)), "exact"), "kind must be one of"),
    (lambda: build_index(np.ones((5, 4)), "exact", nlist=2), "takes no parameters"),
    (lambda: build_index(np.ones((5, 4)), "hnsw", nprobe=2), r"unknown parameter\(s\) \['nprobe'\]"),
    (lambda: build_index(np.ones((5, 4)), "ivf", nlist=6), "nlist=6"),
    (lambda: build_index(np.ones((5, 4)), "hnsw", M=0), "M must be a positive integer"),
    (lambda: neighbour_recall(np.ones((2, 3)), np.ones((3, 3)), 3), "one row per query"),
    (lambda: neighbour_recall(np.ones((2, 3)), np.ones((2, 3)), 5), "k=5 needs"),
    (lambda: ann_benchmark(n_items=0), "n_items must be"),
])
def test_bad_arguments_are_named(build, match):
    with pytest.raises(ValueError, match=match):
        build()
