"""The embedded default dataset: a synthetic catalogue whose signal is learnable two ways.

Taught in notebook ``02_data`` (used by every notebook: it needs no download).

How it is generated (all from one seed):

- **Items** belong to a primary genre (and sometimes a secondary one). Their titles and
  descriptions are written from genre-specific words, so *text* carries the genre.
  Some items form a **series** ("Iron Harbor", "Iron Harbor II", ...) sharing a title stem.
  Each item has a latent popularity (log-normal: a long tail).
- **Users** have tastes over genres (a sparse Dirichlet draw) and a popularity bias.
- **Interactions** are drawn in time order: an item is picked with probability
  ∝ exp(taste·genres·strength + bias·log popularity) among items not yet seen; after a
  series item the user often watches the next one. So a model can learn from *text*
  (the genre words of the history match the candidate's) and from *co-occurrence*
  (users with similar taste, and series, share items).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recbook.data.schema import RecDataset, build_item_text
from recbook.errors import positive_int

GENRES: dict[str, dict[str, list[str]]] = {
    "Sci-Fi": {
        "title": ["Starship", "Orbit", "Nebula", "Android", "Quantum", "Galaxy", "Cyborg", "Horizon"],
        "words": ["spaceship", "robots", "distant planets", "time travel", "aliens", "a rogue AI", "wormholes", "colonists"],
    },
    "Romance": {
        "title": ["Love", "Heart", "Kiss", "Wedding", "Valentine", "Summer", "Promise", "Letters"],
        "words": ["two lovers", "a wedding", "first love", "a summer affair", "heartbreak", "a secret admirer", "old flames", "a proposal"],
    },
    "Horror": {
        "title": ["Haunting", "Crypt", "Shadow", "Curse", "Nightmare", "Blood", "Ghost", "Asylum"],
        "words": ["a haunted house", "ghosts", "a cursed doll", "zombies", "a serial killer", "demons", "a dark forest", "screams at night"],
    },
    "Comedy": {
        "title": ["Party", "Oops", "Roommates", "Vacation", "Prank", "Buddies", "Chaos", "Weekend"],
        "words": ["hilarious mishaps", "awkward roommates", "a road trip", "pranks", "a wild party", "clumsy heroes", "stand-up comics", "family chaos"],
    },
    "Documentary": {
        "title": ["Inside", "Truth", "Planet", "Chronicle", "Portrait", "Frontline", "Archive", "Witness"],
        "words": ["real interviews", "wildlife", "history", "climate science", "a true story", "investigative journalism", "archival footage", "ocean life"],
    },
    "Action": {
        "title": ["Strike", "Fury", "Mission", "Bullet", "Rampage", "Fire", "Target", "Vengeance"],
        "words": ["car chases", "explosions", "a heist", "martial arts", "a special forces team", "a hostage rescue", "gunfights", "a bomb threat"],
    },
    "Animation": {
        "title": ["Little", "Magic", "Dragon", "Bunny", "Toy", "Rainbow", "Puppy", "Kingdom"],
        "words": ["talking animals", "a magical kingdom", "toys that come alive", "a brave little hero", "songs", "a friendly dragon", "fairy tales", "cartoon adventures"],
    },
    "Crime": {
        "title": ["Heist", "Mob", "Detective", "Alibi", "Witness", "Syndicate", "Verdict", "Underworld"],
        "words": ["a detective", "the mafia", "a courtroom", "a bank robbery", "corrupt cops", "a murder case", "drug lords", "an undercover agent"],
    },
    "Western": {
        "title": ["Outlaw", "Frontier", "Sheriff", "Canyon", "Saddle", "Dust", "Gold", "Ranch"],
        "words": ["cowboys", "a gold rush", "a sheriff", "a desert town", "horse riders", "a showdown at noon", "bandits", "cattle ranchers"],
    },
    "Musical": {
        "title": ["Melody", "Broadway", "Rhythm", "Song", "Dance", "Encore", "Harmony", "Stage"],
        "words": ["singing", "a dance contest", "a jazz band", "a Broadway show", "a rock concert", "choreography", "an opera singer", "a talent show"],
    },
}

_STEMS = ["Iron", "Silent", "Golden", "Last", "Crimson", "Hidden", "Wild", "Broken", "Eternal", "Midnight", "Frozen", "Lost"]
_ROMAN = ["", " II", " III", " IV", " V"]
_EPOCH = 1_600_000_000  # 2020-09-13, start of the synthetic timeline


def make_synthetic(
    seed: int = 0,
    n_users: int = 600,
    n_items: int = 400,
    n_genres: int = 10,
    mean_interactions: float = 30.0,
    min_interactions: int = 5,
    taste_strength: float = 3.0,
    popularity_bias: float = 1.0,
    series_fraction: float = 0.3,
    follow_series: float = 0.5,
) -> RecDataset:
    """Generate the synthetic catalogue (deterministic for a given ``seed`` and sizes).

    Parameters control how strong each signal is: ``taste_strength`` (genre taste, seen
    through text), ``popularity_bias`` (how much everyone likes popular items),
    ``series_fraction`` (share of items that belong to a series) and ``follow_series``
    (probability of watching the next episode right after one).
    """
    _check_args(n_users=n_users, n_items=n_items, n_genres=n_genres, min_interactions=min_interactions)
    if not 1 <= n_genres <= len(GENRES):
        raise ValueError(f"n_genres must be between 1 and {len(GENRES)}, got {n_genres}")
    if mean_interactions < min_interactions:
        raise ValueError(f"mean_interactions ({mean_interactions}) must be >= min_interactions ({min_interactions})")
    rng = np.random.default_rng(seed)
    genre_names = list(GENRES)[:n_genres]

    items, item_genres, series_next = _make_items(rng, n_items, genre_names, series_fraction)
    popularity = rng.lognormal(mean=0.0, sigma=1.5, size=n_items)
    items["popularity"] = popularity / popularity.sum()

    tastes = rng.dirichlet(np.full(n_genres, 0.3), size=n_users)
    affinity = tastes @ item_genres.T  # (users, items), in [0, 1]
    logits = taste_strength * n_genres * affinity / 2 + popularity_bias * np.log(popularity)
    activity = np.clip(rng.lognormal(np.log(mean_interactions) - 0.3, 0.75, size=n_users), min_interactions, n_items // 2)

    rows = []
    for u in range(n_users):
        seq = _draw_sequence(rng, logits[u], int(activity[u]), series_next, follow_series)
        start = _EPOCH + rng.integers(0, 300 * 86400)
        gaps = rng.exponential(86400.0, size=len(seq)).astype(np.int64) + 60
        times = start + np.cumsum(gaps)
        noise = rng.normal(0.0, 0.6, size=len(seq))
        ratings = np.clip(np.round(2.0 + 3.0 * affinity[u, seq] / max(affinity[u].max(), 1e-9) + noise), 1, 5)
        rows.append(pd.DataFrame({"user_id": u + 1, "item_id": seq + 1, "rating": ratings, "timestamp": times}))
    interactions = pd.concat(rows, ignore_index=True)
    interactions = interactions.astype({"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"})
    interactions = interactions.sort_values(["timestamp", "user_id"], kind="stable").reset_index(drop=True)

    users = pd.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1, dtype=np.int64),
            "age": rng.integers(16, 70, size=n_users),
            "favourite_genre": [genre_names[i] for i in tastes.argmax(axis=1)],
        }
    )
    info = {"seed": seed, "genres": genre_names, "source": "recbook.data.make_synthetic"}
    return RecDataset("synthetic", interactions, items, users, info)


def _check_args(**kwargs) -> None:
    for name, value in kwargs.items():
        positive_int(value, name)


def _make_items(rng, n_items: int, genre_names: list[str], series_fraction: float):
    n_genres = len(genre_names)
    primary = rng.integers(0, n_genres, size=n_items)
    secondary = np.where(rng.random(n_items) < 0.4, rng.integers(0, n_genres, size=n_items), -1)
    secondary[secondary == primary] = -1
    genre_matrix = np.zeros((n_items, n_genres))
    genre_matrix[np.arange(n_items), primary] = 1.0
    has_second = secondary >= 0
    genre_matrix[np.flatnonzero(has_second), secondary[has_second]] = 0.5
    genre_matrix /= genre_matrix.sum(axis=1, keepdims=True)

    series_next = np.full(n_items, -1)
    titles, descriptions, genres = [], [], []
    i = 0
    used = set()
    while i < n_items:
        g = genre_names[primary[i]]
        vocab = GENRES[g]
        length = int(rng.integers(2, 5)) if rng.random() < series_fraction else 1
        length = min(length, n_items - i)
        base = f"{rng.choice(_STEMS)} {rng.choice(vocab['title'])}"
        while base in used:
            base = f"{base} {rng.choice(vocab['title'])}"
        used.add(base)
        for j in range(length):
            idx = i + j
            if j > 0:
                primary[idx] = primary[i]  # a sequel keeps the genre
                genre_matrix[idx] = genre_matrix[i]
                secondary[idx] = secondary[i]
                series_next[idx - 1] = idx
            gname = genre_names[primary[idx]]
            words = rng.choice(GENRES[gname]["words"], size=3, replace=False)
            desc = f"A {gname.lower()} story about {words[0]}, {words[1]} and {words[2]}"
            if secondary[idx] >= 0:
                second = genre_names[secondary[idx]]
                desc += f", with a touch of {rng.choice(GENRES[second]['words'])}"
            titles.append(base + _ROMAN[min(j, len(_ROMAN) - 1)])
            descriptions.append(desc)
            genres.append("|".join([gname] + ([genre_names[secondary[idx]]] if secondary[idx] >= 0 else [])))
        i += length

    years = rng.integers(1970, 2021, size=n_items)
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1, dtype=np.int64),
            "title": titles,
            "genres": genres,
            "year": years,
            "description": descriptions,
        }
    )
    items["text"] = [
        build_item_text(t, y, g, d) for t, y, g, d in zip(items["title"], items["year"], items["genres"], items["description"])
    ]
    return items, genre_matrix, series_next


def _draw_sequence(rng, logits: np.ndarray, length: int, series_next: np.ndarray, follow_series: float) -> np.ndarray:
    """Items for one user in time order, without repeats."""
    # Gumbel-top-k: a random order of items drawn without replacement ∝ exp(logits).
    order = list(np.argsort(-(logits + rng.gumbel(size=len(logits))))[: length * 2])
    seen: set[int] = set()
    seq: list[int] = []
    pos = 0
    while len(seq) < length and pos < len(order):
        if seq and series_next[seq[-1]] >= 0 and series_next[seq[-1]] not in seen and rng.random() < follow_series:
            nxt = int(series_next[seq[-1]])
        else:
            nxt = int(order[pos])
            pos += 1
            if nxt in seen:
                continue
        seen.add(nxt)
        seq.append(nxt)
    return np.array(seq, dtype=np.int64)


# ------------------------------------------------------------------ a stream with drift at a known time
_DAY = 86400


def make_drift_stream(
    seed: int = 0,
    n_users: int = 300,
    n_items: int = 300,
    n_genres: int = 8,
    n_windows: int = 6,
    events_per_window: int = 2500,
    window_days: int = 14,
    change_window: int | None = 3,
    taste_shift: float = 0.5,
    genre_boost: float = 2.0,
    new_items: float = 0.15,
    taste_strength: float = 3.0,
    follow_series: float = 0.3,
) -> RecDataset:
    """A synthetic interaction **stream** on one clock, with drift of a known kind, size and time — the ground truth
    that drift detectors and update strategies are checked against.

    The timeline is ``n_windows`` windows of ``window_days`` days with ``events_per_window`` interactions each (users
    drawn by a long-tailed activity, none beyond half the catalogue; items as in :func:`make_synthetic`: taste ·
    genres + log popularity, no repeats, series followed). From the start of window ``change_window`` (``None``: never — a **stationary** stream,
    for false-alarm rates) three things change at once:

    - **tastes shift**: a ``taste_shift`` share of users draw new genre tastes;
    - **a genre trends**: one genre's items get ``genre_boost`` more logit for everybody;
    - **new items arrive**: a ``new_items`` share of the catalogue (the trending genre first) is released at the
      change and cannot be picked before it.

    ``info["drift"]`` records the truth: ``window_bounds`` (Unix seconds, ``n_windows + 1`` edges),
    ``change_window``, ``change_time``, ``trending_genre``, ``new_item_ids``, ``shifted_user_ids`` and the sizes.
    Windows are numbered from 0; ``recbook.data.temporal_windows(ds.interactions, bounds=…)`` with
    ``window_bounds[1:]`` makes window 0 the base period.
    """
    _check_args(n_users=n_users, n_items=n_items, n_genres=n_genres, n_windows=n_windows,
                events_per_window=events_per_window, window_days=window_days)
    if not 2 <= n_genres <= len(GENRES):
        raise ValueError(f"n_genres must be between 2 and {len(GENRES)}, got {n_genres}")
    if change_window is not None and (isinstance(change_window, bool) or not 1 <= change_window < n_windows):
        raise ValueError(f"change_window must be None (stationary) or in [1, {n_windows - 1}], got {change_window!r}")
    for name, value in (("taste_shift", taste_shift), ("new_items", new_items)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if genre_boost < 0:
        raise ValueError(f"genre_boost must be >= 0, got {genre_boost}")
    rng = np.random.default_rng(seed)
    genre_names = list(GENRES)[:n_genres]
    items, item_genres, series_next = _make_items(rng, n_items, genre_names, 0.3)
    popularity = rng.lognormal(0.0, 1.2, size=n_items)
    items["popularity"] = popularity / popularity.sum()
    tastes = rng.dirichlet(np.full(n_genres, 0.3), size=n_users)
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    activity /= activity.sum()

    drifting = change_window is not None
    trending = int(rng.integers(n_genres))
    primary = item_genres.argmax(axis=1)
    n_new = int(round(new_items * n_items)) if drifting else 0
    # the trending genre's items first, then others, at random within each group
    order = np.lexsort((rng.random(n_items), primary != trending))
    new_rows = np.sort(order[:n_new])
    shifted = np.flatnonzero(rng.random(n_users) < taste_shift) if drifting else np.zeros(0, dtype=int)
    new_tastes = tastes.copy()
    new_tastes[shifted] = rng.dirichlet(np.full(n_genres, 0.3), size=len(shifted))
    boost = np.where(primary == trending, genre_boost, 0.0)

    def logits_for(taste_matrix, after):
        base = taste_strength * n_genres * (taste_matrix @ item_genres.T) / 2 + np.log(popularity)
        if after:
            base = base + boost
        else:
            base[:, new_rows] = -np.inf  # not released yet
        return base

    before_logits, after_logits = logits_for(tastes, False), logits_for(new_tastes, True)
    start = _EPOCH
    bounds = start + np.arange(n_windows + 1, dtype=np.int64) * window_days * _DAY
    seen = np.zeros((n_users, n_items), dtype=bool)
    last = np.full(n_users, -1)
    counts, cap = np.zeros(n_users, dtype=int), max(2, n_items // 2)
    rows = []
    for w in range(n_windows):
        after = drifting and w >= change_window
        logits = after_logits if after else before_logits
        times = np.sort(rng.integers(bounds[w], bounds[w + 1], size=events_per_window))
        users = rng.choice(n_users, size=events_per_window, p=activity)
        for u, t in zip(users, times):
            if counts[u] >= cap:  # a user who has seen half the catalogue hands the event to someone else
                open_users = np.flatnonzero(counts < cap)
                if not len(open_users):
                    break
                u = int(rng.choice(open_users, p=activity[open_users] / activity[open_users].sum()))
            counts[u] += 1
            prev = last[u]
            nxt = series_next[prev] if prev >= 0 else -1
            if nxt >= 0 and not seen[u, nxt] and np.isfinite(logits[u, nxt]) and rng.random() < follow_series:
                item = int(nxt)
            else:
                z = np.where(seen[u], -np.inf, logits[u])
                if not np.isfinite(z).any():
                    continue  # this user has seen everything available
                z = z - z[np.isfinite(z)].max()
                p = np.exp(z)
                item = int(rng.choice(n_items, p=p / p.sum()))
            seen[u, item] = True
            last[u] = item
            affinity = (new_tastes if after else tastes)[u] @ item_genres[item]
            rating = float(np.clip(np.round(2.0 + 3.0 * affinity / max(item_genres.max(), 1e-9) + rng.normal(0, 0.6)), 1, 5))
            rows.append((u + 1, item + 1, rating, int(t)))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    interactions = interactions.astype({"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"})
    interactions = interactions.sort_values(["timestamp", "user_id"], kind="stable").reset_index(drop=True)
    users_df = pd.DataFrame({"user_id": np.arange(1, n_users + 1, dtype=np.int64),
                             "favourite_genre": [genre_names[i] for i in tastes.argmax(axis=1)]})
    truth = {"stationary": not drifting, "window_bounds": bounds.tolist(), "change_window": change_window,
             "change_time": int(bounds[change_window]) if drifting else None,
             "trending_genre": genre_names[trending] if drifting else None,
             "new_item_ids": (new_rows + 1).tolist(), "shifted_user_ids": (shifted + 1).tolist(),
             "taste_shift": taste_shift if drifting else 0.0, "genre_boost": genre_boost if drifting else 0.0,
             "new_items": new_items if drifting else 0.0}
    info = {"seed": seed, "genres": genre_names, "source": "recbook.data.make_drift_stream", "drift": truth}
    name = "synthetic-drift" if drifting else "synthetic-stationary"
    return RecDataset(name, interactions, items, users_df, info)
