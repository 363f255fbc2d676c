"""Top-N retrieval from a precomputed item matrix: the first stage of the serving cascade.

A sequential or two-tower model turns a user's history into one vector; every catalogue item has a vector
computed once, offline. Retrieval is then "which N item vectors have the largest dot product with this query".
:class:`ExactIndex` answers it with one matrix product (exact, and fast enough for MovieLens' 1,682 items);
approximate indexes (:class:`FaissIndex`: HNSW graphs or IVF clusters) answer it for catalogues of millions with
the same ``search`` interface, trading a little recall for speed. :func:`build_index` picks one by name,
:func:`neighbour_recall` measures what an approximate index misses, and :func:`ann_benchmark` puts build time, query
time, recall@10 (with a 95% CI over queries) and memory side by side on a synthetic catalogue of 100k items.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from recbook.errors import positive_int


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
        queries = _check_search_args(queries, k, exclude, self.dim)
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


# ------------------------------------------------------------------ approximate search (faiss)
FAISS_KINDS = ("hnsw", "ivf")
KINDS = ("exact", *FAISS_KINDS)
_DEFAULTS = {
    "hnsw": {"M": 32, "ef_construction": 100, "ef_search": 64},
    "ivf": {"nlist": None, "nprobe": 16},  # nlist None: about 4·√n lists, at least 39 training vectors each
}


def _check_search_args(queries, k, exclude, dim: int) -> np.ndarray:
    queries = _as_matrix(queries, "queries")
    if queries.shape[1] != dim:
        raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {dim}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if exclude is not None and len(exclude) != len(queries):
        raise ValueError(f"exclude has {len(exclude)} entries for {len(queries)} queries")
    return queries


class FaissIndex:
    """Approximate maximum-inner-product search with faiss, with :class:`ExactIndex`'s ``search`` interface.

    - ``kind="hnsw"``: a graph (HNSW) over the vectors; ``M`` links per node, ``ef_construction`` the candidate
      list while building, ``ef_search`` while searching (larger: higher recall, slower);
    - ``kind="ivf"``: the vectors are split into ``nlist`` clusters by k-means; a query visits the ``nprobe``
      clusters whose centroids score highest (``nprobe = nlist`` is exact, and as slow as exact).

    Exclusions are honoured by **over-fetching**: the index is asked for ``k`` plus the number of excluded items,
    the excluded ones are dropped, and rows still short are asked again with twice as many, up to the whole
    catalogue. Rows that end with fewer than ``k`` results (few items left, or an IVF search whose probed clusters
    hold fewer items than asked) are padded with index -1 and score -inf, as in :class:`ExactIndex`.
    """

    def __init__(self, vectors, kind: str = "hnsw", seed: int = 0, **params):
        import faiss

        if kind not in FAISS_KINDS:
            raise ValueError(f"kind must be one of {FAISS_KINDS} for a FaissIndex, got {kind!r}")
        unknown = set(params) - set(_DEFAULTS[kind])
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)} for kind={kind!r}; it takes {sorted(_DEFAULTS[kind])}")
        self.kind = kind
        self.vectors = _as_matrix(vectors, "vectors")
        n, dim = self.vectors.shape
        self.params = {**_DEFAULTS[kind], **params}
        if kind == "hnsw":
            m = positive_int(self.params["M"], "M")
            index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = positive_int(self.params["ef_construction"], "ef_construction")
            index.hnsw.efSearch = positive_int(self.params["ef_search"], "ef_search")
            index.add(self.vectors)
        else:
            nlist = self.params["nlist"]
            nlist = max(1, min(int(4 * np.sqrt(n)), n // 39)) if nlist is None else positive_int(nlist, "nlist")
            if nlist > n:
                raise ValueError(f"nlist={nlist} clusters need at least as many vectors; the catalogue has {n}")
            nprobe = min(positive_int(self.params["nprobe"], "nprobe"), nlist)
            self.params.update(nlist=nlist, nprobe=nprobe)
            self._quantizer = faiss.IndexFlatIP(dim)  # kept referenced: the IVF index does not own it
            index = faiss.IndexIVFFlat(self._quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.cp.min_points_per_centroid = 1  # a small catalogue gets a (quiet) coarse k-means
            index.train(self.vectors)
            index.add(self.vectors)
            index.nprobe = nprobe
        self.index = index

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def memory_bytes(self) -> int:
        """Bytes of the serialised index (vectors, graph links or inverted lists): what it occupies in memory."""
        import faiss

        return int(faiss.serialize_index(self.index).nbytes)

    def _raw(self, queries: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        scores, indices = self.index.search(queries, fetch)
        return np.where(indices >= 0, scores, -np.inf).astype(np.float32), indices.astype(np.int64)

    def search(self, queries, k: int, exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, each ``(len(queries), k)``, best first; ``exclude`` and padding as in
        :meth:`ExactIndex.search`."""
        queries = _check_search_args(queries, k, exclude, self.dim)
        k, n = int(k), len(self)
        out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_indices = np.full((len(queries), k), -1, dtype=np.int64)
        if exclude is None:
            scores, indices = self._raw(queries, min(k, n))
            out_scores[:, : scores.shape[1]], out_indices[:, : indices.shape[1]] = scores, indices
            return out_scores, out_indices
        excluded = [np.unique(np.asarray(e, dtype=np.int64)) for e in exclude]
        excluded = [e[(e >= 0) & (e < n)] for e in excluded]
        wanted = np.array([min(k, n - len(e)) for e in excluded])  # what an exact search would return
        pending = np.arange(len(queries))
        fetch = min(n, k + max((len(e) for e in excluded), default=0))
        while len(pending):
            scores, indices = self._raw(queries[pending], fetch)
            short = []
            for row, (s, i) in enumerate(zip(scores, indices)):
                q = pending[row]
                keep = (i >= 0) & ~np.isin(i, excluded[q])
                got = min(int(keep.sum()), k)
                out_scores[q, :got], out_indices[q, :got] = s[keep][:got], i[keep][:got]
                exhausted = fetch >= n or (i < 0).any()  # the index has nothing more to give this query
                if got < wanted[q] and not exhausted:
                    short.append(q)
            pending, fetch = np.array(short, dtype=np.int64), min(n, 2 * fetch)
        return out_scores, out_indices


def build_index(vectors, kind: str = "exact", **params):
    """An index over ``vectors`` by name: ``"exact"`` (:class:`ExactIndex`), ``"hnsw"`` or ``"ivf"``
    (:class:`FaissIndex`, ``params`` passed on)."""
    if kind == "exact":
        if params:
            raise ValueError(f"kind='exact' takes no parameters, got {sorted(params)}")
        return ExactIndex(vectors)
    if kind in FAISS_KINDS:
        return FaissIndex(vectors, kind, **params)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def index_memory_bytes(index) -> int:
    """Bytes an index holds: the vector matrix for :class:`ExactIndex`, the serialised index for faiss."""
    return index.memory_bytes if isinstance(index, FaissIndex) else int(index.vectors.nbytes)


def neighbour_recall(approx_indices, exact_indices, k: int = 10) -> np.ndarray:
    """Per query: the share of the exact top-``k`` that the approximate top-``k`` found (padding -1 ignored; a
    query whose exact list is empty counts 1.0). Average it, or put a CI on it with :func:`recbook.evaluation.stats.mean_ci`."""
    approx, exact = np.asarray(approx_indices), np.asarray(exact_indices)
    if approx.ndim != 2 or exact.ndim != 2 or len(approx) != len(exact):
        raise ValueError(f"approx_indices and exact_indices must be 2-d with one row per query, got shapes {approx.shape} and {exact.shape}")
    k = positive_int(k, "k")
    if approx.shape[1] < k or exact.shape[1] < k:
        raise ValueError(f"k={k} needs at least k columns, got {approx.shape[1]} (approx) and {exact.shape[1]} (exact)")
    out = np.ones(len(exact))
    for row, (a, e) in enumerate(zip(approx[:, :k], exact[:, :k])):
        e = e[e >= 0]
        if len(e):
            out[row] = np.isin(e, a[a >= 0]).sum() / len(e)
    return out


def synthetic_catalogue(n_items: int = 100_000, dim: int = 64, n_queries: int = 1000, n_clusters: int = 200, spread: float = 0.6,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(items, queries)`` float32 vectors shaped like learned embeddings: a mixture of ``n_clusters`` Gaussian
    clusters (genres, tastes) with ``spread`` the within-cluster noise relative to the distance between centres,
    item norms varying (popular items score higher everywhere), and queries drawn from the same mixture. Seeded."""
    n_items, dim, n_queries = (positive_int(v, name) for v, name in ((n_items, "n_items"), (dim, "dim"), (n_queries, "n_queries")))
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) / np.sqrt(dim)

    def draw(n):
        points = centres[rng.integers(n_clusters, size=n)] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim)
        return points

    items = draw(n_items) * rng.lognormal(0.0, 0.25, size=(n_items, 1))
    return items.astype(np.float32), draw(n_queries).astype(np.float32)


def _time_single(index, queries: np.ndarray, k: int) -> float:
    start = time.perf_counter()
    for q in queries:
        index.search(q[None, :], k)
    return (time.perf_counter() - start) / len(queries) * 1e3


def ann_benchmark(n_items: int = 100_000, dim: int = 64, n_queries: int = 1000, k: int = 10, seed: int = 0,
                  kinds=("exact", "hnsw", "ivf"), n_single: int = 200, **catalogue) -> pd.DataFrame:
    """Exact vs approximate indexes on :func:`synthetic_catalogue`: one row per entry of ``kinds``.

    An entry is a kind name (default parameters) or ``(label, kind, params)``, e.g.
    ``("hnsw ef=16", "hnsw", {"ef_search": 16})``. Columns: ``build_s`` (seconds to build), ``batch_ms_per_query``
    (all queries in one call, divided by their number), ``single_ms_per_query`` (``n_single`` queries one at a
    time: what one request pays), ``recall@k`` vs the exact top-``k`` with its 95% bootstrap CI over queries, and
    ``memory_bytes``. Timings are wall clock on this machine's current load and thread count (faiss uses OpenMP
    threads); run it alone.
    """
    from recbook.evaluation.stats import mean_ci

    items, queries = synthetic_catalogue(n_items, dim, n_queries, seed=seed, **catalogue)
    exact = ExactIndex(items)
    _, truth = exact.search(queries, k)
    rows = []
    for entry in kinds:
        label, kind, params = (entry, entry, {}) if isinstance(entry, str) else entry
        start = time.perf_counter()
        index = build_index(items, kind, **params)
        build_s = time.perf_counter() - start
        index.search(queries[:8], k)  # warm-up
        start = time.perf_counter()
        _, found = index.search(queries, k)
        batch_ms = (time.perf_counter() - start) / len(queries) * 1e3
        single_ms = _time_single(index, queries[: min(n_single, len(queries))], k)
        recall = mean_ci(neighbour_recall(found, truth, k), seed=seed)
        rows.append({"index": label, "kind": kind, "params": dict(getattr(index, "params", {})), "build_s": build_s,
                     "batch_ms_per_query": batch_ms, "single_ms_per_query": single_ms, f"recall@{k}": recall.mean,
                     "recall_ci_low": recall.low, "recall_ci_high": recall.high, "memory_bytes": index_memory_bytes(index),
                     "n_items": n_items, "dim": dim, "n_queries": len(queries)})
    return pd.DataFrame(rows).set_index("index")
