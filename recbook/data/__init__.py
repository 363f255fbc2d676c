"""Datasets, splits, negatives and text pairs — one data model for every source.

Taught in notebook ``02_data``. See :mod:`recbook.data.schema` for the data model.
"""

from recbook.data.folder import load_folder, read_csv_checked
from recbook.data.movielens import (
    ML100K_MD5,
    ML100K_URL,
    OFFLINE_ENV,
    default_cache_dir,
    downloads_allowed,
    fetch_zip,
    find_movielens_100k,
    load_movielens_100k,
    md5_of,
    obtain_movielens_100k,
    read_movielens_100k_folder,
)
from recbook.data.schema import (
    ChecksumError,
    DataError,
    DataFileNotFoundError,
    DownloadError,
    RecDataset,
    build_item_text,
    validate,
)
from recbook.data.splits import Split, TemporalWindows, leave_last_out, make_training_pairs, random_split, sample_negatives, temporal_windows
from recbook.data.synthetic import make_drift_stream, make_synthetic
from recbook.data.text import (
    LengthBucketBatchSampler,
    PairCollator,
    build_text_pairs,
    catalogue_texts,
    encode_pairs,
    history_entries,
    padding_fraction,
    to_hf_dataset,
    tokenize_pairs,
)


def load_dataset(source: str = "synthetic", **kwargs) -> RecDataset:
    """One entry point: ``"synthetic"``, ``"movielens-100k"``, ``"synthetic-drift"`` (:func:`make_drift_stream`) or a folder path in the :func:`load_folder` format."""
    if source == "synthetic":
        return make_synthetic(**kwargs)
    if source == "synthetic-drift":
        return make_drift_stream(**kwargs)
    if source in ("movielens-100k", "ml-100k", "movielens"):
        return load_movielens_100k(**kwargs)
    import os

    if os.path.isdir(source):
        return load_folder(source, **kwargs)
    raise DataFileNotFoundError(
        f"unknown data source {source!r}: use 'synthetic', 'movielens-100k', 'synthetic-drift', or a folder holding interactions.csv and items.csv"
    )


__all__ = [
    "ChecksumError", "DataError", "DataFileNotFoundError", "DownloadError", "LengthBucketBatchSampler",
    "ML100K_MD5", "ML100K_URL", "PairCollator", "RecDataset", "Split", "build_item_text", "build_text_pairs", "catalogue_texts",
    "OFFLINE_ENV", "default_cache_dir", "downloads_allowed", "encode_pairs", "fetch_zip", "find_movielens_100k", "history_entries", "leave_last_out", "load_dataset", "load_folder",
    "TemporalWindows", "load_movielens_100k", "make_drift_stream", "make_synthetic", "make_training_pairs", "temporal_windows", "md5_of", "movielens_or_synthetic", "obtain_movielens_100k", "padding_fraction", "random_split",
    "read_csv_checked", "read_movielens_100k_folder", "sample_negatives", "to_hf_dataset", "tokenize_pairs", "validate",
]  # fmt: skip


def movielens_or_synthetic(folder=None, seed: int = 0, n_users: int = 600, n_items: int = 400) -> RecDataset:
    """MovieLens-100k when a copy is found (``folder``, ``$RECBOOK_MOVIELENS_DIR`` or the cache) or can be downloaded
    (:func:`obtain_movielens_100k`); otherwise the synthetic catalogue (``seed``, ``n_users``, ``n_items``), with a one-line message saying so and how to change it."""
    found = obtain_movielens_100k(folder)
    if found is not None:
        return load_movielens_100k(found)
    print("Using the synthetic catalogue instead of MovieLens-100k.")
    return make_synthetic(seed=seed, n_users=n_users, n_items=n_items)
