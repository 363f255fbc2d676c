"""Top-N retrieval from a precomputed item matrix: the first stage of the serving cascade.

A sequential or two-tower model turns a user's history into one vector; every catalogue item has a vector
computed once, offline. Retrieval is then "which N item vectors have the largest dot product with this query".
:class:`ExactIndex` answers it with one matrix product (exact, and fast enough for MovieLens' 1,682 items);
approximate indexes (faiss) answer it for catalogues of millions with the same ``search`` interface.
"""

from __future__ import annotations

import numpy as np


def _as_matrix(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2-d array (rows × dimensions), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(array)


class ExactIndex:
    """Exact maximum-inner-product search: ``scores = queries @ vectors.T``, then the top ``k`` per row."""

    kind = "exact"

    def __init__(self, vectors):
        self.vectors = _as_matrix(vectors, "vectors")

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def search(self, queries, k: int, exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(len(queries), k)``, best first. ``exclude[i]`` lists row indices that query
        ``i`` must not get back (e.g. the items the user has already seen); rows with fewer than ``k`` candidates
        left are padded with index -1 and score -inf."""
        queries = _as_matrix(queries, "queries")
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.dim}")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if exclude is not None and len(exclude) != len(queries):
            raise ValueError(f"exclude has {len(exclude)} entries for {len(queries)} queries")
        scores = queries @ self.vectors.T
        if exclude is not None:
            for row, seen in enumerate(exclude):
                scores[row, np.asarray(seen, dtype=np.int64)] = -np.inf
        k_eff = min(int(k), len(self))
        top = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        indices, out_scores = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
        indices = np.where(np.isfinite(out_scores), indices, -1)
        if k_eff < k:
            pad = k - k_eff
            indices = np.pad(indices, ((0, 0), (0, pad)), constant_values=-1)
            out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return out_scores, indices
