"""Train/validation/test splits and negative sampling.

Taught in notebook ``02_data``; the protocol built on them in ``03_baselines``.

- :func:`leave_last_out` — temporal: per user, the last interaction is the test item,
  the second-to-last the validation item, everything earlier is training. Models
  never see the future of a user.
- :func:`random_split` — per user, a seeded random fraction of interactions per part.
- :func:`sample_negatives` — items a user never interacted with (in the interactions
  you pass), uniformly or proportionally to popularity, from a generator seeded per user.
- :func:`make_training_pairs` — positives (label 1) plus sampled negatives (label 0);
  the negatives exclude the user's *training* interactions only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recbook.data.schema import DataError


@dataclass
class Split:
    """Three interaction tables with the same columns."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}

    def for_tuning(self) -> "Split":
        """The same protocol one step earlier, for choosing hyperparameters without touching the test items: the
        visible interactions (train + valid) split again by leave-last-out, so its *test* items are this split's
        validation items (users left with fewer than three visible interactions are dropped)."""
        return leave_last_out(history_for_test(self), drop_short_users=True)


def history_for_test(split: Split) -> pd.DataFrame:
    """What a model may see when scoring test items: training + validation interactions."""
    return pd.concat([split.train, split.valid], ignore_index=True)


def _sorted_by_time(interactions: pd.DataFrame) -> pd.DataFrame:
    missing = {"user_id", "item_id", "timestamp"} - set(interactions.columns)
    if missing:
        raise DataError(f"interactions lack column(s) {sorted(missing)}; pass RecDataset.interactions")
    # a stable sort keeps the file order for equal timestamps, so the split is reproducible
    return interactions.sort_values(["user_id", "timestamp"], kind="stable")


def leave_last_out(interactions: pd.DataFrame, min_interactions: int = 3, drop_short_users: bool = False) -> Split:
    """Temporal leave-last-out: test = each user's last interaction, valid = second-to-last.

    Every user needs at least ``min_interactions`` (≥ 3: one to train on, one to
    validate, one to test). Users below it raise :class:`DataError` unless
    ``drop_short_users=True``, which removes them.
    """
    if min_interactions < 3:
        raise ValueError(f"min_interactions must be at least 3 (train, valid, test), got {min_interactions}")
    df = _sorted_by_time(interactions)
    counts = df.groupby("user_id").size()
    short = counts[counts < min_interactions]
    if len(short):
        if not drop_short_users:
            raise DataError(
                f"{len(short)} user(s) have fewer than {min_interactions} interactions (e.g. user_id "
                f"{short.index[0]} has {short.iloc[0]}); leave-last-out needs {min_interactions}. Pass "
                "drop_short_users=True to remove them, or use random_split."
            )
        df = df[~df["user_id"].isin(short.index)]
    pos_from_end = df.groupby("user_id").cumcount(ascending=False)
    test = df[pos_from_end == 0].reset_index(drop=True)
    valid = df[pos_from_end == 1].reset_index(drop=True)
    train = df[pos_from_end >= 2].reset_index(drop=True)
    return Split(train, valid, test)


def random_split(interactions: pd.DataFrame, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Per-user random split with the given (train, valid, test) ratios, seeded.

    Each user keeps at least one training interaction; parts are rounded per user, so
    users with few interactions may have no validation/test rows.
    """
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {ratios}")
    df = _sorted_by_time(interactions)
    rng = np.random.default_rng(seed)
    shuffled = df.iloc[rng.permutation(len(df))].sort_values("user_id", kind="stable")
    rank = shuffled.groupby("user_id").cumcount().to_numpy()
    n = shuffled.groupby("user_id")["user_id"].transform("size").to_numpy()
    n_test = np.floor(n * ratios[2] + 0.5).astype(int)
    n_valid = np.floor(n * ratios[1] + 0.5).astype(int)
    n_test = np.minimum(n_test, n - 1)
    n_valid = np.minimum(n_valid, n - 1 - n_test)
    part = np.where(rank < n_test, 2, np.where(rank < n_test + n_valid, 1, 0))
    out = [shuffled[part == p].sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True) for p in (0, 1, 2)]
    return Split(*out)


def user_seed_key(user) -> int:
    """A stable non-negative integer for a user id, to seed that user's own generator.

    Non-negative integer ids are used as they are; anything else (strings, negative numbers)
    by the CRC-32 of ``str(user)`` — stable across processes and machines, unlike ``hash``.
    """
    if isinstance(user, (int, np.integer)) and not isinstance(user, (bool, np.bool_)) and user >= 0:
        return int(user)
    return zlib.crc32(str(user).encode("utf-8"))


def sample_negatives(
    users,
    positives: pd.DataFrame,
    all_items,
    n: int,
    strategy: str = "uniform",
    seed: int = 0,
) -> np.ndarray:
    """``n`` distinct negative item ids for each entry of ``users`` → array ``(len(users), n)``.

    ``positives`` are the interactions that must never be sampled for their user. Which
    ones to pass depends on the use: for *evaluation* pass the whole dataset's interactions
    (a held-out item must never come back as a "negative"); for *training* pass the training
    split only (see :func:`make_training_pairs`). ``strategy`` is ``"uniform"`` over the other
    items or ``"popularity"`` (∝ interaction count in ``positives`` + 1, harder negatives).

    Each user draws from its own generator, seeded by ``(seed, user)``
    (:func:`user_seed_key`): a user gets the same negatives whether it is sampled alone, in a
    subset or with everyone, so user subsets nest and runs on different subsets compare. The
    rows of one user (in the order they appear in ``users``) are successive, distinct draws.
    """
    if strategy not in ("uniform", "popularity"):
        raise ValueError(f"strategy must be 'uniform' or 'popularity', got {strategy!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    users = np.asarray(users)
    all_items = np.asarray(all_items)
    index = pd.Series(np.arange(len(all_items)), index=all_items)
    known = positives["item_id"].isin(index.index)
    pos_cols = positives.loc[known].assign(col=index.reindex(positives.loc[known, "item_id"]).to_numpy())
    by_user = pos_cols.groupby("user_id")["col"].agg(lambda s: np.unique(s.to_numpy()))
    if strategy == "popularity":
        weights = np.bincount(pos_cols["col"].to_numpy(), minlength=len(all_items)).astype(float) + 1.0
    else:
        weights = np.ones(len(all_items))
    rate = weights / weights.sum()
    out = np.empty((len(users), n), dtype=all_items.dtype)
    order = np.argsort(users, kind="stable")
    unique_users, first = np.unique(users[order], return_index=True)
    for user, rows in zip(unique_users, np.split(order, first[1:])):
        excluded = by_user.get(user, np.empty(0, dtype=int))
        available = len(all_items) - len(excluded)
        if available < n:
            raise DataError(
                f"user_id {user} has interacted with {len(excluded)} of {len(all_items)} items, leaving {available} "
                f"negatives; cannot sample {n}. Lower n or drop this user."
            )
        # Exponential race (Gumbel-top-k in disguise): item i "arrives" at E_i / p_i with E_i ~ Exp(1);
        # the n earliest arrivals are a draw without replacement ∝ p (4× cheaper than Gumbel noise).
        # Drawn in chunks of rows so a large catalogue never needs a huge key matrix; the chunks
        # are consecutive draws of the user's own generator, so chunking never changes the result.
        rng = np.random.default_rng([int(seed), user_seed_key(user)])
        for chunk in np.array_split(rows, max(1, len(rows) * len(all_items) // 4_000_000)):
            keys = rng.standard_exponential((len(chunk), len(all_items))) / rate
            keys[:, excluded] = np.inf
            out[chunk] = all_items[np.argpartition(keys, n - 1, axis=1)[:, :n]]
    return out


def make_training_pairs(
    train: pd.DataFrame,
    all_items,
    n_negatives: int = 4,
    strategy: str = "uniform",
    seed: int = 0,
) -> pd.DataFrame:
    """Each training interaction (label 1) followed by ``n_negatives`` sampled items (label 0).

    Negatives inherit the positive's ``user_id`` and ``timestamp`` (so a text pair's
    history is the same for both), and are drawn from the items the user has *not*
    interacted with **in** ``train`` — the training interactions only. Excluding the
    user's validation/test items too would leak the future: a held-out item could then
    never be a training negative, and the model would learn that exactly those items are
    special. (Evaluation negatives, :func:`recbook.evaluation.protocol.make_eval_set`, still exclude
    all of the user's interactions.) Columns: ``user_id, item_id, label, timestamp``.
    """
    if isinstance(all_items, pd.DataFrame):
        raise TypeError(
            "make_training_pairs(train, all_items, ...) takes the catalogue's item ids as its second argument, not an "
            "interactions table: training negatives are drawn against `train` itself (drop the all-interactions argument)"
        )
    pos = train[["user_id", "item_id", "timestamp"]].reset_index(drop=True)
    neg = sample_negatives(pos["user_id"].to_numpy(), train, all_items, n_negatives, strategy, seed)
    pairs = pd.DataFrame(
        {
            "user_id": np.repeat(pos["user_id"].to_numpy(), 1 + n_negatives),
            "item_id": np.column_stack([pos["item_id"].to_numpy(), neg]).ravel(),
            "label": np.tile(np.r_[1.0, np.zeros(n_negatives)], len(pos)),
            "timestamp": np.repeat(pos["timestamp"].to_numpy(), 1 + n_negatives),
        }
    )
    return pairs



@dataclass
class ColdStartSplit:
    """Leave-last-out with the newest items held out of training entirely (item cold start).

    - ``train``, ``valid``: leave-last-out parts **without** any interaction on a cold item — a model
      never sees a cold item, not even in a history;
    - ``test_warm``: the leave-last-out test rows whose item is warm (users whose last item is cold are left out);
    - ``test_cold``: for each user who ever picked a cold item, the *first* such interaction — one row
      per user, so metrics get per-user confidence intervals;
    - ``cold_history``: what each of those users had done *before* it (warm items only): the history
      a model gets when scoring ``test_cold`` — nothing from the future.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test_warm: pd.DataFrame
    test_cold: pd.DataFrame
    cold_history: pd.DataFrame
    cold_items: np.ndarray

    def warm(self) -> Split:
        """The warm side as an ordinary :class:`Split` (train, valid, test_warm)."""
        return Split(self.train, self.valid, self.test_warm)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test warm": len(self.test_warm),
                "test cold": len(self.test_cold), "cold items": len(self.cold_items)}


def cold_item_split(interactions: pd.DataFrame, fraction: float = 0.1, min_interactions: int = 3) -> ColdStartSplit:
    """Leave-last-out, with the newest ``fraction`` of items (by their first interaction) made cold.

    Cold items are removed from training and validation (so from every history a model sees); each
    user's first interaction with a cold item becomes a cold test row, scored with only the warm
    items that user had before it. Users are those leave-last-out keeps (at least
    ``min_interactions``); equal times keep the table's order (stable), never an order by item id.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), e.g. 0.1 for the newest 10% of items; got {fraction}")
    df = _sorted_by_time(interactions)
    first = df.sort_values("timestamp", kind="stable").drop_duplicates("item_id")  # items in order of first appearance
    n_cold = int(round(fraction * len(first)))
    if n_cold < 1 or n_cold >= len(first):
        raise DataError(f"fraction={fraction} of {len(first)} items leaves {n_cold} cold items; choose a fraction that keeps "
                        "at least one cold and one warm item")
    cold_items = first["item_id"].to_numpy()[-n_cold:]
    split = leave_last_out(interactions, min_interactions, drop_short_users=True)
    warm_only = lambda frame: frame[~frame["item_id"].isin(cold_items)].reset_index(drop=True)  # noqa: E731

    users = df[df["user_id"].isin(split.test["user_id"])].reset_index(drop=True)
    users["position"] = users.groupby("user_id").cumcount()
    cold_rows = users[users["item_id"].isin(cold_items)].drop_duplicates("user_id")  # first cold pick per user
    before = users.merge(cold_rows[["user_id", "position"]].rename(columns={"position": "cut"}), on="user_id")
    before = before[(before["position"] < before["cut"]) & ~before["item_id"].isin(cold_items)]
    has_history = cold_rows["user_id"].isin(before["user_id"])
    columns = list(interactions.columns)
    return ColdStartSplit(
        train=warm_only(split.train),
        valid=warm_only(split.valid),
        test_warm=warm_only(split.test),
        test_cold=cold_rows.loc[has_history, columns].reset_index(drop=True),
        cold_history=before[columns].reset_index(drop=True),
        cold_items=cold_items,
    )


# ------------------------------------------------------------------ global temporal windows
@dataclass
class TemporalWindows:
    """A **global temporal** protocol: one clock for everybody, cut into a base period and update windows.

    ``bounds`` holds ``n_windows + 2`` timestamps: the base period is ``[bounds[0], bounds[1])`` and update window
    ``w`` (1 … ``n_windows``) is ``[bounds[w], bounds[w + 1])``. At step ``w`` a model knows everything before
    ``bounds[w]`` (:meth:`known`), is evaluated on window ``w`` (:meth:`window`) and is then updated with it.

    Unlike leave-last-out — where one user's test item can be older than another user's training items — nothing
    a model learns from lies after anything it is tested on, which is what "how well does yesterday's model serve
    today" needs (Meng et al. 2020, *Exploring data splitting strategies for the evaluation of recommendation
    models*; Sun et al., TOIS 2023, *Take a fresh look at recommender systems from an evaluation standpoint*).
    """

    interactions: pd.DataFrame  # sorted by time (stable)
    bounds: np.ndarray

    @property
    def n_windows(self) -> int:
        return len(self.bounds) - 2

    def _check(self, w: int, lowest: int = 0) -> None:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or not lowest <= w <= self.n_windows:
            raise ValueError(f"window must be an integer in [{lowest}, {self.n_windows}], got {w!r}")

    def known(self, w: int) -> pd.DataFrame:
        """Everything before window ``w`` starts (``w = 1``: the base period; ``w = n_windows + 1``: everything)."""
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or not 1 <= w <= self.n_windows + 1:
            raise ValueError(f"window must be an integer in [1, {self.n_windows + 1}], got {w!r}")
        return self.interactions[self.interactions["timestamp"] < self.bounds[w]]

    def window(self, w: int) -> pd.DataFrame:
        """The interactions of window ``w`` (0 = the base period)."""
        self._check(w)
        t = self.interactions["timestamp"]
        return self.interactions[(t >= self.bounds[w]) & (t < self.bounds[w + 1])]

    def cold_items(self, w: int) -> np.ndarray:
        """Items whose first interaction falls in window ``w``: no model trained before it has seen them."""
        self._check(w, 1)
        seen = set(self.known(w)["item_id"].unique())
        return np.array(sorted(set(self.window(w)["item_id"].unique()) - seen), dtype=np.int64)

    def describe(self) -> pd.DataFrame:
        """One row per period: dates, interactions, users, users seen before it ("returning"), new items."""
        rows = []
        for w in range(self.n_windows + 1):
            part = self.window(w)
            before = self.known(w) if w >= 1 else part.iloc[:0]
            rows.append({"window": "base" if w == 0 else w,
                         "start": pd.to_datetime(int(self.bounds[w]), unit="s").date(),
                         "end": pd.to_datetime(int(self.bounds[w + 1]) - 1, unit="s").date(),
                         "interactions": len(part), "users": part["user_id"].nunique(),
                         "returning users": part.loc[part["user_id"].isin(before["user_id"]), "user_id"].nunique(),
                         "new items": len(self.cold_items(w)) if w else part["item_id"].nunique()})
        return pd.DataFrame(rows).set_index("window")


def temporal_windows(interactions: pd.DataFrame, n_windows: int = 4, base_fraction: float = 0.5,
                     bounds=None) -> TemporalWindows:
    """Cut ``interactions`` into a base period and ``n_windows`` update windows on one global clock.

    By default the base period holds the oldest ``base_fraction`` of interactions and the rest is split into
    ``n_windows`` windows of equal interaction counts (quantiles of time, so a busy month and a quiet one carry the
    same evidence). ``bounds`` instead gives the ``n_windows + 1`` start times of the base period's end and of each
    window plus the end — ``[end of base, start of window 2, …, end]`` — as Unix seconds or anything
    ``pandas.Timestamp`` reads ("1998-01-01"); interactions after the last bound are dropped.
    """
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in interactions.columns]
    if missing:
        raise DataError(f"interactions lack column(s) {missing} needed for temporal windows; they have {list(interactions.columns)}")
    if len(interactions) == 0:
        raise DataError("interactions are empty: nothing to cut into windows")
    df = interactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    t = df["timestamp"].to_numpy()
    if bounds is None:
        if isinstance(n_windows, bool) or not isinstance(n_windows, (int, np.integer)) or n_windows < 1:
            raise ValueError(f"n_windows must be a positive integer, got {n_windows!r}")
        if not 0 < base_fraction < 1:
            raise ValueError(f"base_fraction must be in (0, 1), e.g. 0.5 for the oldest half; got {base_fraction}")
        qs = base_fraction + (1 - base_fraction) * np.arange(n_windows) / n_windows
        inner = np.quantile(t, qs, method="higher").astype(np.int64)
        edges = np.r_[t[0], inner, t[-1] + 1]
    else:
        given = [int(b) if isinstance(b, (int, np.integer)) else int(pd.Timestamp(b).timestamp()) for b in bounds]
        if len(given) < 2:
            raise ValueError(f"bounds needs at least 2 times (end of the base period, end of window 1), got {len(given)}")
        edges = np.r_[min(t[0], given[0] - 1), given].astype(np.int64)
    if np.any(np.diff(edges) <= 0):
        raise DataError(f"window bounds are not strictly increasing: {edges.tolist()} — too few distinct timestamps for "
                        f"{len(edges) - 2} windows, or bounds out of order")
    if bounds is not None:
        df = df[df["timestamp"] < edges[-1]].reset_index(drop=True)
    out = TemporalWindows(df, edges)
    empty = [w for w in range(out.n_windows + 1) if len(out.window(w)) == 0]
    if empty:
        raise DataError(f"window(s) {empty} hold no interactions; use fewer windows or other bounds")
    return out
