"""One data model for every source, and the errors raised on bad input.

Taught in notebook ``02_data``.

Every loader returns a :class:`RecDataset`:

- ``interactions``: ``user_id`` (int), ``item_id`` (int), ``rating`` (float, 1.0 when the
  source has no ratings), ``timestamp`` (int, seconds) — one row per interaction;
- ``items``: ``item_id``, ``title``, ``genres`` (``|``-separated string, may be empty),
  ``text`` (what text models read) — one row per item;
- ``users``: optional user features, one row per ``user_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recbook.errors import DataError

INTERACTION_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
ITEM_COLUMNS = ["item_id", "title", "genres", "text"]


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file or folder is missing (also a ``FileNotFoundError``)."""


class ChecksumError(DataError):
    """A downloaded file does not have the published checksum; nothing was cached."""


class DownloadError(DataError, ConnectionError):
    """A download failed (no network, server error) and no cached copy exists."""


@dataclass
class RecDataset:
    """Interactions, items and (optionally) users of one recommendation dataset."""

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        validate(self)

    @property
    def n_users(self) -> int:
        return int(self.interactions["user_id"].nunique())

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def item_ids(self) -> np.ndarray:
        return self.items["item_id"].to_numpy()

    def item_text(self) -> pd.Series:
        """Item text indexed by ``item_id``."""
        return self.items.set_index("item_id")["text"]

    def item_titles(self) -> pd.Series:
        """Item title indexed by ``item_id``."""
        return self.items.set_index("item_id")["title"]

    def summary(self) -> dict[str, object]:
        """Counts and shape statistics that notebooks print."""
        per_user = self.interactions.groupby("user_id").size()
        per_item = self.interactions.groupby("item_id").size()
        n_cells = self.n_users * max(self.n_items, 1)
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(self.interactions),
            "density_%": round(100 * len(self.interactions) / n_cells, 3),
            "interactions/user (median)": float(per_user.median()),
            "interactions/item (median)": float(per_item.reindex(self.item_ids, fill_value=0).median()),
            "items never interacted": int((~self.items["item_id"].isin(per_item.index)).sum()),
        }

    def subset_users(self, n_users: int | None, seed: int = 0) -> "RecDataset":
        """A copy restricted to ``n_users`` randomly chosen users (all items kept); ``None`` = all."""
        if n_users is None or n_users >= self.n_users:
            return self
        rng = np.random.default_rng(seed)
        users = np.sort(self.interactions["user_id"].unique())
        keep = rng.choice(users, size=n_users, replace=False)
        inter = self.interactions[self.interactions["user_id"].isin(keep)].reset_index(drop=True)
        user_df = None if self.users is None else self.users[self.users["user_id"].isin(keep)].reset_index(drop=True)
        return RecDataset(f"{self.name} ({n_users} users)", inter, self.items, user_df, dict(self.info))


def validate(ds: RecDataset) -> None:
    """Check a dataset's columns, dtypes and references; raise :class:`DataError` naming the problem."""
    for frame, cols, what in ((ds.interactions, INTERACTION_COLUMNS, "interactions"), (ds.items, ITEM_COLUMNS, "items")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise DataError(f"{ds.name}: {what} table lacks column(s) {missing}; it has {list(frame.columns)}")
    inter, items = ds.interactions, ds.items
    for col in ("user_id", "item_id", "timestamp"):
        if not pd.api.types.is_integer_dtype(inter[col]):
            raise DataError(f"{ds.name}: interactions column {col!r} must hold integers, got dtype {inter[col].dtype}")
    if not pd.api.types.is_integer_dtype(items["item_id"]):
        raise DataError(f"{ds.name}: items column 'item_id' must hold integers, got dtype {items['item_id'].dtype}")
    if inter["rating"].isna().any():
        row = int(np.flatnonzero(inter["rating"].isna().to_numpy())[0])
        raise DataError(f"{ds.name}: interactions column 'rating' has NaN (first at row {row}); fill or drop those rows")
    dup = items["item_id"].duplicated()
    if dup.any():
        raise DataError(f"{ds.name}: item_id {items['item_id'][dup].iloc[0]} appears more than once in the items table")
    unknown = ~inter["item_id"].isin(items["item_id"])
    if unknown.any():
        ids = inter.loc[unknown, "item_id"].unique()
        raise DataError(
            f"{ds.name}: {int(unknown.sum())} interactions refer to {len(ids)} item id(s) missing from the items table "
            f"(e.g. {ids[:5].tolist()}); add those items or drop the interactions"
        )
    if ds.users is not None and "user_id" not in ds.users.columns:
        raise DataError(f"{ds.name}: users table lacks column 'user_id'")


def build_item_text(title: str, year: str | int | None = None, genres: str = "", description: str = "", extra: dict | None = None) -> str:
    """The text a model reads for one item: ``"Title (year). Genres: A, B. description. key: value."``"""
    parts = [str(title).strip()]
    if year not in (None, "") and not (isinstance(year, float) and np.isnan(year)):
        parts[0] += f" ({year})"
    parts[0] += "."
    genre_list = [g for g in str(genres or "").split("|") if g]
    if genre_list:
        parts.append("Genres: " + ", ".join(genre_list) + ".")
    if description and str(description).strip():
        d = str(description).strip()
        parts.append(d if d.endswith(".") else d + ".")
    for key, value in (extra or {}).items():
        if value is not None and str(value).strip() and str(value) != "nan":
            parts.append(f"{key}: {str(value).strip()}.")
    return " ".join(parts)
