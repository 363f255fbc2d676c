"""recbook.serve.retrieval: exact top-N search checked against a brute-force sort, exclusions and bad input."""

import numpy as np
import pytest

from recbook.serve.retrieval import ExactIndex


def test_exact_index_matches_a_full_sort():
    rng = np.random.default_rng(0)
    vectors, queries = rng.normal(size=(500, 16)), rng.normal(size=(7, 16))
    scores, indices = ExactIndex(vectors).search(queries, 10)
    full = queries @ vectors.T
    expected = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-5)


def test_exclusions_and_small_catalogues():
    vectors = np.eye(4, dtype=np.float32)
    index = ExactIndex(vectors)
    scores, indices = index.search([[4, 3, 2, 1]], 3, exclude=[np.array([0])])
    assert indices.tolist() == [[1, 2, 3]] and scores[0, 0] == 3
    scores, indices = index.search([[1, 1, 1, 1]], 6, exclude=[[0, 1]])
    assert indices[0, :2].tolist() in ([2, 3], [3, 2]) and indices[0, 2:].tolist() == [-1] * 4 and np.isinf(scores[0, 2:]).all()


@pytest.mark.parametrize("call, match", [
    (lambda i: i.search(np.ones((2, 3)), 5), "dimensions"),
    (lambda i: i.search(np.ones((2, 4)), 0), "k must be"),
    (lambda i: i.search(np.ones((2, 4)), 2, exclude=[[0]]), "exclude has 1"),
    (lambda i: i.search(np.full((1, 4), np.nan), 2), "NaN"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call(ExactIndex(np.ones((5, 4))))


def test_bad_vectors():
    with pytest.raises(ValueError, match="vectors must be a non-empty 2-d array"):
        ExactIndex(np.ones(5))
