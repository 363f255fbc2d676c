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

from .schema import RecDataset, build_item_text

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
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


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
