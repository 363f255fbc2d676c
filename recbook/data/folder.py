"""Your own data: a folder with ``interactions.csv`` and ``items.csv``.

Taught in notebook ``02_data``.

Schema (comma-separated, UTF-8, with a header row):

``interactions.csv``
    ``user_id`` (integer), ``item_id`` (integer), ``timestamp`` (Unix seconds, or a date
    such as ``2024-05-01 13:00``), optional ``rating`` (number; 1.0 when absent).
``items.csv``
    ``item_id`` (integer), ``title`` (text), optional ``genres`` (``|``-separated, e.g.
    ``Action|Comedy``), optional ``description``. Any other text column joins the item
    text as ``"column: value."``.
``users.csv`` (optional)
    ``user_id`` and any user features.

Every problem raises :class:`~recbook.data.DataError` (or ``DataFileNotFoundError``)
naming the file, the column and the first bad row, and saying how to fix it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from recbook.data.schema import DataError, DataFileNotFoundError, RecDataset, build_item_text

_INTERACTION_REQUIRED = ["user_id", "item_id", "timestamp"]
_ITEM_REQUIRED = ["item_id", "title"]


def load_folder(path: str | os.PathLike, name: str | None = None) -> RecDataset:
    """Load ``interactions.csv`` + ``items.csv`` (+ optional ``users.csv``) from ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataFileNotFoundError(f"{folder}: no such folder; pass the folder that holds interactions.csv and items.csv")
    inter_path, items_path = folder / "interactions.csv", folder / "items.csv"
    raw_inter = read_csv_checked(inter_path, _INTERACTION_REQUIRED, ["rating"])
    raw_items = read_csv_checked(items_path, _ITEM_REQUIRED, ["genres", "description"])

    inter = pd.DataFrame(
        {
            "user_id": _integer_column(raw_inter, "user_id", inter_path),
            "item_id": _integer_column(raw_inter, "item_id", inter_path),
            "rating": _rating_column(raw_inter, inter_path),
            "timestamp": _timestamp_column(raw_inter, inter_path),
        }
    )
    item_ids = _integer_column(raw_items, "item_id", items_path)
    dup = item_ids.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{items_path}, row {row + 2}: item_id {item_ids[row]} appears more than once; item ids must be unique")
    if raw_items["title"].isna().any():
        row = int(np.flatnonzero(raw_items["title"].isna().to_numpy())[0])
        raise DataError(f"{items_path}, row {row + 2}: column 'title' is empty; every item needs a title")

    unknown = ~inter["item_id"].isin(item_ids)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        ids = inter.loc[unknown, "item_id"].unique()
        raise DataError(
            f"{inter_path}, row {row + 2}: item_id {inter['item_id'][row]} is not in {items_path.name} "
            f"({int(unknown.sum())} rows, {len(ids)} unknown ids, e.g. {ids[:5].tolist()}); add those items to "
            f"{items_path.name} or remove the rows"
        )

    genres = raw_items["genres"].fillna("").astype(str) if "genres" in raw_items else pd.Series([""] * len(raw_items))
    description = raw_items["description"].fillna("").astype(str) if "description" in raw_items else pd.Series([""] * len(raw_items))
    extra_cols = [c for c in raw_items.columns if c not in ("item_id", "title", "genres", "description") and (pd.api.types.is_string_dtype(raw_items[c]) or raw_items[c].dtype == object)]
    texts = [
        build_item_text(t, None, g, d, {c: raw_items[c].iloc[i] for c in extra_cols})
        for i, (t, g, d) in enumerate(zip(raw_items["title"].astype(str), genres, description))
    ]
    items = pd.DataFrame({"item_id": item_ids, "title": raw_items["title"].astype(str), "genres": genres, "text": texts})
    for c in extra_cols:
        items[c] = raw_items[c]

    users = None
    if (folder / "users.csv").is_file():
        raw_users = read_csv_checked(folder / "users.csv", ["user_id"], [])
        users = raw_users.assign(user_id=_integer_column(raw_users, "user_id", folder / "users.csv"))
    return RecDataset(name or folder.name, inter, items, users, {"source": str(folder)})


def read_csv_checked(path: Path, required: list[str], optional: list[str]) -> pd.DataFrame:
    """Read a CSV and check its header: a missing file, wrong delimiter or misnamed column gets a clear error."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"{path} is missing; it must be a CSV with columns {required} (optional: {optional})")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; it needs a header row with {required} and at least one data row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} could not be parsed as UTF-8 CSV ({str(exc).strip()}); check quoting and the encoding") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df.columns) == 1 and len(required) > 1:
        header = df.columns[0]
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in header:
                raise DataError(
                    f"{path}: the header {header!r} is separated by {label}, not commas; save the file as "
                    f"comma-separated CSV (or convert with pandas: pd.read_csv(path, sep={sep!r}).to_csv(path, index=False))"
                )
    missing = [c for c in required if c not in df.columns]
    if missing:
        hints = []
        for col in missing:
            close = difflib.get_close_matches(col, [c.lower() for c in df.columns], n=1, cutoff=0.6)
            if close:
                original = next(c for c in df.columns if c.lower() == close[0])
                hints.append(f"rename {original!r} to {col!r}")
        hint = "; ".join(hints) if hints else f"add the column(s) {missing}"
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}. Fix: {hint}")
    if df.empty:
        raise DataError(f"{path} has a header but no data rows")
    return df


def _integer_column(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna() | (values != np.floor(values))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}, row {row + 2}: column {col!r} must hold integer ids, found {df[col].iloc[row]!r}; "
            "map your ids to integers first (e.g. df[col].astype('category').cat.codes)"
        )
    return values.astype("int64")


def _rating_column(df: pd.DataFrame, path: Path) -> pd.Series:
    if "rating" not in df.columns:
        return pd.Series(np.ones(len(df)), dtype="float64")
    values = pd.to_numeric(df["rating"], errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(
            f"{path}, row {row + 2}: column 'rating' is empty or not a number ({df['rating'].iloc[row]!r}); "
            "fill it, drop the row, or drop the whole column for implicit feedback"
        )
    return values.astype("float64")


def _timestamp_column(df: pd.DataFrame, path: Path) -> pd.Series:
    raw = df["timestamp"]
    numeric = pd.to_numeric(raw, errors="coerce")
    if numeric.notna().all():
        return numeric.astype("int64")
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(
            f"{path}, row {row + 2}: column 'timestamp' has {raw.iloc[row]!r}, neither Unix seconds nor a date; "
            "use e.g. 1714568400 or 2024-05-01 13:00"
        )
    return pd.Series((parsed - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1), dtype="int64")
