"""Hidden tests for notebooks/07_movielens_cli.ipynb — instructor side, never in a release.

Each section runs in the learner's kernel right after the exercise's visible self-check, inside a function (its
names stay local). Header: ``# %% <exercise id> | <points> point(s)``; the comment under it says what it catches.
"""
# Each section is a separate snippet using the notebook's names (answer, the learner's functions):
# ruff: noqa: E402, F811, F821

# %% 07.best_model | 1 point
# Catches: a loop over the self-check's model names instead of the dict's keys; other metrics; a single model.
import numpy as np

rng = np.random.default_rng(42)
for _ in range(4):
    results = {name: {"NDCG@10": float(rng.random()), "HR@10": float(rng.random()), "AUC": float(rng.random())}
               for name in ("sasrec", "bert4rec", "lightgcn", "pop", "ease", "cross-encoder")}
    for metric in ("NDCG@10", "HR@10", "AUC"):
        want = max(results, key=lambda n: results[n][metric])
        got = best_model(results, metric)
        assert got == want, f"best by {metric} is {want!r}, got {got!r}"
assert best_model({"only": {"NDCG@10": 0.1}}, "NDCG@10") == "only"

# %% 07.command | 1 point
# Catches: a command line built as one string and split on spaces (breaks an --out with a space); non-string items.
from recbook.cli import build_parser
from recbook.models import MODEL_NAMES

for data, model, out in (("synthetic", MODEL_NAMES[-1], "runs/my run"), ("movielens-100k", MODEL_NAMES[0], "/tmp/out dir/x")):
    argv = command(data, model, out)
    assert isinstance(argv, (list, tuple)) and all(isinstance(a, str) for a in argv), "return a list of strings, one per argument"
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit:
        raise AssertionError(f"{argv} is not accepted by the command line") from None
    assert (args.command, args.data, args.model, args.out) == ("train", data, model, out), f"{argv} does not parse to train --data {data} --model {model} --out {out!r}"

# %% 07.protocol_ratio | 1 point
# Catches: the self-check's one example answered with its number (6.4) instead of read from the dict.
import numpy as np

rng = np.random.default_rng(43)
for _ in range(5):
    sampled, full = float(rng.uniform(0.1, 0.6)), float(rng.uniform(0.01, 0.1))
    metrics = {"NDCG@10": sampled, "HR@10": float(rng.random()), "full_ranking": {"NDCG@10": full, "HR@10": float(rng.random())}}
    got = float(protocol_ratio(metrics))
    assert np.isclose(got, sampled / full), f"for sampled {sampled:.3f} and full {full:.3f} expected {sampled / full:.3f}, got {got:.3f}"

# %% 07.second_seed | 2 points
# Catches: a new run on the profile's user subset (no --all-users), per-user scores from the sampled protocol or from
# another model than the run handed in, a reference other than the seed-0 MF under full ranking (e.g. item-kNN, or the
# sampled table), and data_absent handed in where the data is (the visible check catches that too).
import numpy as np

if AVAILABLE:
    assert answer["metrics"]["dataset_users"] == ds_all.n_users, "train on all users (--all-users), as section 1 did"
    assert len(answer["per_user"]) == len(es_all.heldout), "score the same users as section 2: es_all"
    assert abs(float(answer["per_user"]["NDCG@10"].mean()) - answer["metrics"]["full_ranking"]["NDCG@10"]) < 1e-6, \
        "per_user must be the new run's checkpoint scored under full ranking (its metrics.json full_ranking NDCG@10 is the mean)"
    assert np.allclose(np.asarray(answer["reference"]["NDCG@10"], dtype=float), users_all["full"]["mf"]["NDCG@10"].to_numpy()), \
        "compare with the seed-0 MF under full ranking: users_all['full']['mf']"
else:
    assert answer == {"data_absent": True}, "without MovieLens, hand in {'data_absent': True}"
