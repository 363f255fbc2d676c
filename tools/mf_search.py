"""The wider MF-BPR search behind notebook 09's small MF grid (about 20 minutes on a 2-core CPU).

Same rule as the notebook: every setting fitted on ``split.for_tuning()`` and judged by full-ranking NDCG@10 on the
validation items (``recbook.models.tuning.tune``); the test items are never looked at. Prints every setting, best last.

    RECBOOK_MOVIELENS_DIR=... python tools/mf_search.py
"""

from __future__ import annotations

import time

from recbook.data import leave_last_out, load_movielens_100k, obtain_movielens_100k
from recbook.models.tuning import tune
from recbook.profile import get_profile

# round 1 is a coarse grid; round 2 is a fixed grid around the best of round 1 as first run (dim 32, 100 epochs, weight
# decay 0.1, lr 0.02), written out so that the search is repeatable as it was run
GRIDS = ({"dim": [32, 128], "epochs": [30, 100], "weight_decay": [1e-3, 1e-1, 1.0], "lr": [5e-3, 2e-2]},
         {"dim": [32], "epochs": [100, 200], "weight_decay": [0.1, 0.3], "lr": [0.02, 0.05]})


def main() -> None:
    folder = obtain_movielens_100k(None)
    if folder is None:
        raise SystemExit("MovieLens-100k not found: set RECBOOK_MOVIELENS_DIR to a folder with u.data and u.item")
    ds = load_movielens_100k(folder)
    split = leave_last_out(ds.interactions, drop_short_users=True)
    profile = get_profile("quick")
    for grid in GRIDS:
        start = time.perf_counter()
        result = tune("mf", ds, split, grid, profile=profile, model_seed=0)  # the seed notebook 09 tunes with
        print(result.table.sort_values("NDCG@10").to_string(index=False))
        print(f"best {result.best} → validation NDCG@10 {result.score:.4f} ({time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
