"""Classroom grading (issue 14): nbgrader versions of the course notebooks with hidden tests, and grading end to end.

The unit tests check the cell transformation of every notebook (each exercise → an answer cell and a tests cell
carrying its hidden tests), that releases leak no solution or hidden test, that the hidden tests pass on the
notebooks' own solutions and fail on typical mistakes, and how submissions without nbgrader metadata are read.
The end-to-end test grades planted submissions of a light notebook (01_cross_entropy) with nbgrader.
"""

import contextlib
import csv
import io
import time
from pathlib import Path

import nbformat
import pytest

from tests.helpers import load_tool

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "01_cross_entropy"


load = load_tool  # tools/<name>.py as a module


classroom = load("classroom")

# Experiment exercises: their answers use the notebook's trained models. Here they run on a miniature of the notebook
# (a small synthetic catalogue, briefly trained models, a popularity stand-in for 08's cross-encoder), built from the
# names the notebook defines before the exercise.
# The compression notebooks' bench in miniature: a 6-layer, 32-wide BERT with the real tokenizer embeds a small synthetic
# catalogue for a briefly trained text recommender (recbook.compress.catalogue), in seconds.
_TINY_BENCH = """
import tempfile
from pathlib import Path
from transformers import BertConfig, BertModel
from recbook.compress.catalogue import catalogue_bench
from recbook.models.backbone import load_tokenizer
folder = Path(tempfile.mkdtemp(prefix="recbook-grading-bench-"))
tok = load_tokenizer()
torch.manual_seed(0)
BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=6, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=128)).save_pretrained(folder / "bert")
tok.save_pretrained(folder / "bert")
bench = catalogue_bench(make_synthetic(seed=0, n_users=40, n_items=50), cold_fraction=0.2, epochs=2, n_negatives=9,
                        encoder=str(folder / "bert"), cache_dir=folder / "cache", progress=False)
teacher, tok = bench.teacher, bench.tokenizer
warm_texts = bench.texts_of(bench.warm_items)
"""
# A 1-layer, 32-wide BERT with the real tokenizer, saved like a pretrained model: the fine-tuning miniatures train it in seconds.
_ONE_LAYER_BERT = """
import tempfile
from pathlib import Path
from transformers import BertConfig, BertModel
from recbook.models.backbone import load_tokenizer
MODEL = Path(tempfile.mkdtemp(prefix="recbook-grading-bert-")) / "bert"
tokenizer = load_tokenizer()
torch.manual_seed(0)
BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=128)).save_pretrained(MODEL)
tokenizer.save_pretrained(MODEL)
"""
MINIATURES = {
    "10.lora_lr": _ONE_LAYER_BERT + """
from transformers import AutoModel
from recbook.data import leave_last_out
from recbook.evaluation.protocol import evaluate, history_for_test, make_eval_set
from recbook.models.backbone import resolve_model_path
from recbook.models.cross_encoder import CrossEncoder, CrossEncoderScorer, cross_encoder_loader
from recbook.finetune.peft import apply_peft
from recbook.models.text_base import bert_config
from recbook.evaluation.stats import paired_comparison
from recbook.training.loop import train_model
SEED, device, amp = 0, "cpu", None
profile = get_profile("quick", bert_max_steps=4, bert_eval_users=8, eval_negatives=9, max_length=32, batch_size=8)
data = make_synthetic(seed=SEED, n_users=40, n_items=30)
split = leave_last_out(data.interactions)
loader = cross_encoder_loader(data, split, tokenizer, profile, seed=SEED)
eval_set = make_eval_set(data, split, "test", profile.eval_negatives, n_users=profile.bert_eval_users, seed=SEED)
METHODS = {"full fine-tuning": None, "LoRA r=8": ("lora", {"r": 8, "alpha": 16}), "IA3": ("ia3", {})}
LEARNING_RATES = {"full fine-tuning": None, "LoRA r=8": 1e-3, "IA3": 3e-3}


def build(method):
    torch.manual_seed(SEED)
    model = CrossEncoder(AutoModel.from_pretrained(resolve_model_path(MODEL)))
    if METHODS[method] is not None:
        kind, kwargs = METHODS[method]
        apply_peft(model, kind, **kwargs)
    return model


own = build("LoRA r=8")
train_model(own, loader, bert_config(profile, SEED, progress=False, device=device, lr=LEARNING_RATES["LoRA r=8"]))
own_scorer = CrossEncoderScorer(own, tokenizer, data, history_for_test(split), profile.max_length, profile.max_history_items, device=device)
results = {"LoRA r=8": evaluate(own_scorer, eval_set, "sampled", per_user=True)}
""",
    "07.second_seed": """
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from recbook.evaluation.protocol import evaluate, make_eval_set
from recbook.models.base import Recommender
from recbook.runs.recipe import prepare_data
AVAILABLE, SEED = True, 0  # a small synthetic catalogue, saved as a data folder (--data synthetic would change with --seed)
profile = get_profile("quick")
runs = Path(tempfile.mkdtemp(prefix="recbook-grading-cli-"))
env = {**os.environ, "RECBOOK_PROFILE": "quick"}
data_dir = runs / "data"
data_dir.mkdir()
syn = make_synthetic(seed=0, n_users=150, n_items=300)
syn.interactions[["user_id", "item_id", "timestamp"]].to_csv(data_dir / "interactions.csv", index=False)
syn.items[["item_id", "title", "genres"]].to_csv(data_dir / "items.csv", index=False)


def train(model, out, *extra):
    cmd = [sys.executable, "-m", "recbook", "train", "--data", str(data_dir), "--model", model, "--out", str(out), "--seed", str(SEED),
           "--quiet", *extra]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return json.loads((Path(out) / "metrics.json").read_text())


train("mf", runs / "all" / "mf", "--all-users")
ds_all, split_all = prepare_data(str(data_dir), profile, SEED, all_users=True)
es_all = make_eval_set(ds_all, split_all, "test", profile.eval_negatives, seed=SEED)
seed0 = Recommender.from_pretrained(runs / "all" / "mf" / "checkpoint").scorer(es_all.history)
users_all = {"full": {"mf": evaluate(seed0, es_all, "full", per_user=True)["per_user"]}}
""",
    "06.temperature": _ONE_LAYER_BERT + """
import dataclasses
from recbook.data import leave_last_out
from recbook.evaluation.protocol import evaluate, make_eval_set
from recbook.runs.recipe import fit_recommender
SEED, EVAL_EVERY, PATIENCE, device = 0, 2, 2, "cpu"
tt_profile = dataclasses.replace(get_profile("quick"), bert_max_steps=6, batch_size=8, max_length=32)
datasets = {"synthetic": make_synthetic(seed=SEED, n_users=40, n_items=30)}
splits = {"synthetic": leave_last_out(datasets["synthetic"].interactions, drop_short_users=True)}
eval_sets = {"synthetic": make_eval_set(datasets["synthetic"], splits["synthetic"], "test", 9, seed=SEED)}
valid_set = make_eval_set(datasets["synthetic"], splits["synthetic"], "valid", 9, n_users=20, seed=SEED)


def validation_fn(name):
    return lambda model, per_user=False: evaluate(model.scorer(splits[name].train), valid_set, "sampled", per_user=per_user)


fitted = {("synthetic", "two-tower"): fit_recommender("two-tower", datasets["synthetic"], splits["synthetic"], tt_profile, MODEL, seed=SEED,
                                                       progress=False, evaluate_fn=validation_fn("synthetic"), eval_every=EVAL_EVERY,
                                                       patience=PATIENCE)}
per_user = {"synthetic": {"two-tower": evaluate(fitted[("synthetic", "two-tower")].scorer, eval_sets["synthetic"], "sampled",
                                                 per_user=True)["per_user"]}}
""",
    "01.seed_loss": """
from types import SimpleNamespace
from recbook.evaluation import metrics
from recbook.data import leave_last_out, make_training_pairs, sample_negatives
from recbook.evaluation.stats import paired_comparison
SEED, lr = 0, 0.5
profile = SimpleNamespace(logreg_steps=60, n_negatives=2, eval_negatives=19)
data = make_synthetic(seed=SEED, n_users=60, n_items=50)
split = leave_last_out(data.interactions)
train_pairs = make_training_pairs(split.train, data.item_ids, n_negatives=profile.n_negatives, seed=SEED)
item_pos = pd.Series(np.arange(data.n_items), index=data.item_ids)
log_pop = np.log1p(np.bincount(item_pos.reindex(split.train["item_id"]).to_numpy(), minlength=data.n_items))
taste = pd.Series(np.random.default_rng(0).normal(size=data.n_items), index=data.item_ids)


def features(users, items):
    return np.column_stack([taste.reindex(items).to_numpy() * (np.asarray(users) % 3), log_pop[item_pos.reindex(items).to_numpy()],
                            np.ones(len(items))])


X, Y = features(train_pairs["user_id"].to_numpy(), train_pairs["item_id"].to_numpy()), train_pairs["label"].to_numpy()
Xt, Yt = torch.tensor(X), torch.tensor(Y)


def scorer(weights):
    def score(user_ids, item_ids):
        return (features(np.repeat(user_ids, item_ids.shape[1]), item_ids.ravel()) @ weights).reshape(item_ids.shape)
    return score


w_hand = np.zeros(X.shape[1])
for _ in range(profile.logreg_steps):
    w_hand -= lr * X.T @ (1 / (1 + np.exp(-(X @ w_hand))) - Y) / len(Y)
test = split.test[["user_id", "item_id"]]
negatives = sample_negatives(test["user_id"].to_numpy(), data.interactions, data.item_ids, profile.eval_negatives, seed=SEED + 1)
results = {"hand-written GD": metrics.evaluate_sampled(scorer(w_hand), test, negatives, per_user=True)}
""",
    "03.knn_neighbours": """
from recbook.evaluation.protocol import evaluate, make_eval_set
from recbook.models.itemknn import ItemKNN
from recbook.evaluation.stats import paired_comparison
SEED, N_BOOT = 0, 200
datasets = {"synthetic": make_synthetic(seed=SEED, n_users=80, n_items=150)}
eval_sets = {"synthetic": make_eval_set(datasets["synthetic"], stage="test", n_negatives=9, seed=SEED)}
knn = ItemKNN(neighbours=100, shrink=10.0).fit_interactions(eval_sets["synthetic"].history, datasets["synthetic"].item_ids)
per_user = {("synthetic", "full"): {"item-kNN": evaluate(knn.scorer(eval_sets["synthetic"].history), eval_sets["synthetic"], "full",
                                                          per_user=True)["per_user"]}}
""",
    "09.freezing_variant": """
import numpy as np
import pandas as pd
from types import SimpleNamespace
from recbook.data import leave_last_out, make_synthetic
from recbook.evaluation.protocol import evaluate, make_eval_set
from recbook.evaluation.stats import paired_comparison
SEED, N_BOOT = 0, 200
ds = make_synthetic(seed=SEED, n_users=80, n_items=60, mean_interactions=10)
split = leave_last_out(ds.interactions, drop_short_users=True)
test_set = make_eval_set(ds, split, "test", 20, seed=SEED)
col = pd.Series(np.arange(ds.n_items), index=ds.item_ids)
rng = np.random.default_rng(SEED)
fit = SimpleNamespace(frozen_vectors=rng.normal(size=(ds.n_items, 16)), vectors=rng.normal(size=(ds.n_items, 16)))


def content_scorer(vectors, history, n_recent=5):
    rows = {u: col.reindex(g).to_numpy() for u, g in history.groupby("user_id")["item_id"]}

    def score(users, items):
        out = np.zeros(np.shape(items))
        for r, u in enumerate(users):
            h = rows.get(u, np.zeros(0, dtype=int))[-n_recent:]
            if len(h):
                out[r] = vectors[col.reindex(items[r]).to_numpy()] @ vectors[h].mean(axis=0)
        return out
    return score


per_user = {"text, fine-tuned encoder": evaluate(content_scorer(fit.vectors, test_set.history), test_set, "full", per_user=True)["per_user"]}
""",
    "08.rank_fusion": """
import numpy as np
from scipy.stats import rankdata
from recbook.data import leave_last_out, make_synthetic
from recbook.evaluation.protocol import cascade, evaluate, make_eval_set
from recbook.models.popularity import Popularity
from recbook.models.sequential import SequentialConfig
from recbook.models.sequential_fit import default_train_config, fit_sequential
from recbook.finetune.hard_negatives import CachedScorer, only_with_heldout
from recbook.evaluation.stats import paired_comparison
SEED, TOP_N = 0, 10
ds = make_synthetic(seed=SEED, n_users=80, n_items=60, mean_interactions=10)
split = leave_last_out(ds.interactions, drop_short_users=True)
test_set = make_eval_set(ds, split, "test", 20, seed=SEED)
sasrec = fit_sequential(ds, split, SequentialConfig(dim=16, layers=1), default_train_config(seed=SEED, epochs=2, progress=False), progress=False)
cached = {"hard": CachedScorer(Popularity().fit_interactions(test_set.history, ds.item_ids).scorer(test_set.history))}
names = {"hard": f"SASRec top-{TOP_N} → popularity (the cross-encoder's stand-in)"}
per_user = {"full": {"SASRec": evaluate(sasrec.scorer, test_set, "full", per_user=True)["per_user"]}}
two_stage = cascade(sasrec.scorer, only_with_heldout(cached["hard"], test_set.heldout), TOP_N, exclude=test_set.history)
per_user["full"][names["hard"]] = evaluate(two_stage, test_set, "full", per_user=True)["per_user"]
""",
    "04.shuffled_history": """
import numpy as np
from recbook.data import leave_last_out, make_synthetic
from recbook.evaluation.protocol import evaluate_models, make_eval_set
from recbook.models.sequential import SequentialConfig
from recbook.models.sequential_fit import default_train_config, fit_sequential
from recbook.evaluation.stats import paired_comparison
from tests.helpers import load_tool
SEED = 0
ds = make_synthetic(seed=SEED, n_users=60, n_items=40, mean_interactions=10)
split = leave_last_out(ds.interactions, drop_short_users=True)
test_set = make_eval_set(ds, split, "test", 20, seed=SEED)
sasrec = fit_sequential(ds, split, SequentialConfig(dim=16, layers=1), default_train_config(seed=SEED, epochs=2, progress=False), progress=False)
per_user = {"full": {"SASRec": evaluate_models({"SASRec": sasrec.scorer}, test_set, ("full",))["full"]["SASRec"]["per_user"]}}
""",
    "05.id_dropout_off": """
import numpy as np
from recbook.data import make_synthetic
from recbook.data.splits import cold_item_split
from recbook.evaluation.protocol import evaluate_models, make_cold_eval_set
from recbook.models.sequential import SequentialConfig, SequentialScorer
from recbook.models.sequential_fit import default_train_config, fit_sequential
from recbook.evaluation.stats import paired_comparison
SEED, budget = 0, 5.0
ds = make_synthetic(seed=SEED, n_users=60, n_items=40, mean_interactions=10)
cold = cold_item_split(ds.interactions, 0.2)
warm_split = cold.warm()
cold_vs_cold = make_cold_eval_set(ds, cold, 5, seed=SEED, negatives_from="cold")
text = np.random.default_rng(0).normal(size=(ds.n_items, 8)).astype("float32")
fits = {"hybrid": fit_sequential(ds, warm_split, SequentialConfig(item_features="hybrid"), default_train_config(seed=SEED, epochs=2),
                                 text_features=text, max_seconds=budget, progress=False)}
among_cold = evaluate_models({"SASRec-hybrid": SequentialScorer(fits["hybrid"].model, ds.item_ids, cold.cold_history)}, cold_vs_cold,
                             ("sampled",))["sampled"]
""",
    "00.threads": """
import torch
from recbook.perf.timing import interleaved_ratios
a32, b32 = torch.randn(64, 64), torch.randn(64, 64)
""",
    "16.bucket_cost": """
import torch
from transformers import BertConfig, BertModel
from recbook.perf import accel
from recbook.models.cross_encoder import CrossEncoder
ROUNDS = 3
torch.manual_seed(0)
model = CrossEncoder(BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=32, max_position_embeddings=300))).eval()
batch = {"input_ids": torch.randint(1, 100, (4, 20)), "attention_mask": torch.ones(4, 20, dtype=torch.long),
         "token_type_ids": torch.zeros(4, 20, dtype=torch.long)}
batch["attention_mask"][0, 15:] = 0
""",
    "02.negatives_protocol": """
from recbook.data import leave_last_out, make_synthetic, sample_negatives
SEED = 0
profile = get_profile("quick", n_users=60, n_items=80, eval_negatives=19)
synthetic = make_synthetic(seed=SEED, n_users=60, n_items=80)
split = leave_last_out(synthetic.interactions)
""",
    "18.epochs_forgetting": """
from recbook.continual.stream import Stream
from recbook.continual.strategies import UpdateConfig
from recbook.continual.experiment import fit_base_for, run_strategies
from recbook.data import make_drift_stream, temporal_windows
from recbook.models.sequential import SequentialConfig
from recbook.evaluation.stats import paired_comparison
SEED, SEEDS, N_BOOT, events_per_user = 0, (0,), 500, 2
ds = make_drift_stream(seed=1, n_users=40, n_items=200, n_windows=4, events_per_window=300, change_window=2)
windows = temporal_windows(ds.interactions, bounds=ds.info["drift"]["window_bounds"][1:])
stream = Stream.from_interactions(windows.interactions, ds.item_ids).hold_out(0.15, 0.15, seed=SEED)
tuned = UpdateConfig(epochs=2, retrain_epochs=2, batch_size=32)
base, _ = fit_base_for(stream, windows, ds.n_items, SequentialConfig(dim=16, layers=1, heads=1, max_len=8, dropout=0.0), tuned)
""",
    "14.student_window": """
import tempfile
from pathlib import Path
from recbook.compress.request_bench import run_request_bench
from recbook.models import create
from recbook.runs.recipe import Fitted, prepare_data, run_record, save_fitted
SEED, REQUEST_ROUNDS = 0, 1
profile = get_profile("quick", n_users=40, n_items=50, eval_negatives=9, mf_epochs=2, n_negatives=1, seq_time_budget=5.0)
workdir = Path(tempfile.mkdtemp(prefix="recbook-grading-09-"))
ds, split = prepare_data("synthetic", profile, SEED)
lm = create("sasrec", profile, epochs=2, dim=16, layers=1, heads=1, patience=None, refit=False).fit(ds, split)
run = workdir / "run"
save_fitted(Fitted("sasrec", lm, None, 0.0), run / "checkpoint", run_record("synthetic", "sasrec", profile, SEED, ds))
""",
    "13.weight_bits": """
import copy
from recbook.compress.quantize import choose_qparams, dequantize, quantize
from recbook.evaluation.stats import paired_comparison
torch.manual_seed(0)
teacher = torch.nn.Sequential(torch.nn.Embedding(30, 64), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
with torch.no_grad():  # rows of very different ranges, as in a trained BERT
    for layer in (teacher[1], teacher[3]):
        layer.weight.mul_(torch.logspace(-2, 0, layer.weight.shape[0]).unsqueeze(1))
class _Bench:  # stands in for the catalogue bench: a per-user "AUC" from the model's outputs
    tokens = torch.randint(0, 30, (40,))
    def measure(self, model):
        with torch.no_grad():
            return {"warm": pd.DataFrame({"AUC": torch.sigmoid(model(self.tokens).sum(dim=1)).numpy()})}
bench = _Bench()
fp32_users = bench.measure(teacher)
""",
    "17.burst_sustained": """
SEED = 0
""",
    "12.distill_epochs": _TINY_BENCH + """
from recbook.compress.catalogue import distill_sentence_encoder
from recbook.evaluation.stats import paired_comparison
SEED, STUDENT_LR, epochs = 0, 2e-3, 4
STUDENTS = {"first and last [0, 5]": [0, 5]}
best = "first and last [0, 5], distilled"
full, full_losses = distill_sentence_encoder(teacher, tok, warm_texts, layers=[0, 5], epochs=epochs, lr=STUDENT_LR, seed=SEED,
                                             progress=False)
curves = {"first and last [0, 5]": full_losses}
per_user = {best: bench.measure(full), "teacher (6 layers)": bench.measure(teacher)}
""",
    "11.random_control": _TINY_BENCH + """
from recbook.compress.prune import magnitude_prune
from recbook.evaluation.stats import paired_comparison
SEED, LAYER_SCOPE_AT = 0, 0.5
results = {"dense": bench.measure(teacher), "per layer 50%": bench.measure(magnitude_prune(teacher, 0.5, "layer"))}
""",
}
# What the notebooks have imported by the time of their exercises (the answer cells use these names).
PRELUDE = """
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from recbook.finetune.adapters import adapter_parameter_count
from recbook.data import make_synthetic
from recbook.perf.device import cpu_features
from recbook.profile import get_profile
from recbook_course.exercises import check
SEED, N_BOOT = 0, 2000  # the parameters cells' names, which answer cells use
"""
# One typical mistake per exercise (an answer cell): the hidden tests must fail on each. Those marked * pass the
# visible self-check — the reason the hidden tests exist.
MUTANTS = {
    "00.quick_users": 'answer = float(get_profile("quick").n_users)',  # * a float that compares equal
    "00.count_interactions": "answer = len(make_synthetic(seed=1, n_users=50, n_items=40).interactions) * 1.0",  # *
    "00.has_avx2": 'answer = not cpu_features()["AVX2"]',
    "01.bce": "def bce(p, y):\n    p = np.clip(p, 1e-3, 1 - 1e-3)\n    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))",  # *
    "01.grad": "def grad(z, y):\n    return (1.0 / (1.0 + np.exp(-z)) - y) / 32",  # * the self-check's batch size
    "01.pos_weight": "def weighted_bce(z, y, w):\n    return float(np.mean(w * y * np.log1p(np.exp(-z)) + (1 - y) * np.log1p(np.exp(z))))",  # *
    "02.filter_users": ("def keep_active(interactions, k):\n    interactions['n'] = interactions.groupby('user_id')['user_id'].transform('size')\n"
                        "    return interactions[interactions['n'] >= k]"),  # * changes the caller's table
    "02.last_item": "def last_item(interactions):\n    return interactions.groupby('user_id')['item_id'].last().to_dict()",  # * last row, not latest
    "02.popularity_probs": ("def pop_probs(interactions, item_ids):\n"
                            "    counts = np.bincount(interactions['item_id'], minlength=len(item_ids) + 1)[1:len(item_ids) + 1] + 1.0\n"
                            "    return counts / counts.sum()"),  # * ids as positions
    "03.random_hit_rate": "def random_hit_rate(k, n):\n    return k / (n + 1)",
    "03.popularity_scores": "def popularity_scores(train, users, items):\n    return np.bincount(train['item_id'], minlength=70)[np.asarray(items)].astype(float)",  # *
    "03.item_cosine": "def cosine_item_similarity(X):\n    co = X.T @ X\n    n = np.sqrt(np.diag(co))\n    n[n == 0] = 1\n    return co / np.outer(n, n)",
    "06.warmup_lr": ("def lr_at(step, base_lr, warmup, total):\n    if step < warmup:\n        return base_lr * (step + 1) / warmup\n"
                     "    return base_lr * (total - step) / total"),
    "06.no_decay": "def no_decay_names(model):\n    return [n for n, _ in model.named_parameters() if 'bias' in n or 'LayerNorm' in n]",  # * BERT's names
    "06.in_batch_loss": "def in_batch_loss(u, v, temperature):\n    return F.cross_entropy(u @ v.T / temperature, torch.arange(len(u))).item()",  # *
    "07.best_model": "def best_model(results, metric):\n    return max(('pop', 'itemknn', 'mf', 'two-tower'), key=lambda n: results[n][metric])",  # *
    "07.command": "def command(data, model, out):\n    return f'train --data {data} --model {model} --out {out}'.split()",  # *
    "07.protocol_ratio": "def protocol_ratio(metrics):\n    return 6.4",  # * the example's number
    "09.untrained_floor": ("def floor_untrained(scores, trained):\n    out = np.array(scores, dtype=float)\n"
                            "    out[:, ~np.asarray(trained, dtype=bool)] = out[:, np.asarray(trained, dtype=bool)].min() - 1.0\n"
                            "    return out"),  # * one floor for the whole matrix
    "09.content_scores": ("def content_scores(vectors, history, n_recent):\n    mean = np.asarray(vectors)[list(history)].mean(axis=0)\n"
                           "    return np.asarray(vectors) @ (mean / np.linalg.norm(mean))"),  # the whole history
    "08.hard_negatives": ("def hard_negatives(scores, seen, positive, k):\n    s = np.asarray(scores, dtype=float).copy()\n"
                           "    s[np.asarray(seen, dtype=int)] = 0\n    s[positive] = 0\n    return np.argsort(-s, kind='stable')[:k]"),  # * 0, not -inf
    "08.oracle_ndcg": "def oracle_cascade_ndcg(ranks, top_n, k=10):\n    return float((np.asarray(ranks, dtype=float) <= top_n).mean())",
    "04.causal_mask": ("def causal_allowed(seq):\n    n = len(seq)\n"
                       "    return (torch.as_tensor(seq) != 0)[None, :] & torch.ones(n, n, dtype=torch.bool).tril()"),  # padding rows empty: NaN
    "04.paired_ci": ("def paired_difference_ci(a, b, n_boot=2000, seed=0):\n    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)\n"
                      "    rng = np.random.default_rng()\n    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)\n"
                      "    low, high = np.quantile(means, [0.025, 0.975])\n    return float(d.mean()), float(low), float(high)"),  # * seed ignored
    "05.nearest_by_text": ("def nearest_by_text(vectors, query, k):\n    vectors[query] = 0\n    sims = vectors @ vectors[query]\n"
                            "    return np.argsort(-sims, kind='stable')[:k]"),
    "05.constant_auc": "def tie_aware_auc(positive, negatives):\n    return float(np.mean(np.asarray(negatives) <= positive))",  # ties as wins
    "10.lora_params": "def lora_params(d_in, d_out, r, n_matrices):\n    return n_matrices * r * 2 * d_in",
    "10.merge": "def merge(W, A, B, alpha, r):\n    return W + (alpha // r) * (B @ A)",  # * 16 // 2 is right, 6 // 4 is not
    "10.adam_bytes": "def adam_state_bytes(n_trainable):\n    return 12 * n_trainable",
    "10.adapter_params": "def adapter_params(d, m, layers):\n    return layers * 2 * (2 * d * m + d + m)",
    "11.sparsity": "def sparsity(tensor):\n    return float((tensor == 0).sum() / tensor.shape[0])",
    "11.global_threshold": "def global_threshold(weights, amount):\n    return amount * max(float(w.abs().max()) for w in weights)",
    "11.packed_bytes": "def packed_bytes(n, sparsity, value_bytes):\n    return n // 8 + round(n * (1 - sparsity)) * value_bytes",
    "11.random_control": """import copy
from torch.nn.utils import prune
from recbook.compress.prune import prunable_weights
torch.manual_seed(SEED)
control = copy.deepcopy(teacher)
for _, module in prunable_weights(control):
    prune.l1_unstructured(module, "weight", amount=LAYER_SCOPE_AT)  # * the smallest weights: magnitude pruning, not the control
    prune.remove(module, "weight")
control_users = bench.measure(control)
magnitude_users = results[f"per layer {LAYER_SCOPE_AT:.0%}"]
c = paired_comparison(control_users["warm"]["AUC"], magnitude_users["warm"]["AUC"])
answer = {"model": control, "amount": LAYER_SCOPE_AT, "per_user": control_users, "reference": magnitude_users,
          "diff_low": c.diff.low, "diff_high": c.diff.high,
          "verdict": "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"}""",
    "15.uneven_shards": """import torch.nn.functional as F
from recbook.distributed.checks import global_batches, tiny_cross_encoder
def grads(model, part):
    model.zero_grad()
    F.binary_cross_entropy_with_logits(model(part["input_ids"], part["attention_mask"]), part["labels"]).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
model, batch = tiny_cross_encoder(), global_batches(1, 8)[0]
full = grads(model, batch)
max_diff, shard_verdict = {}, {}
for first, rest in ((4, 4), (2, 6)):
    g1 = grads(model, {k: v[:first] for k, v in batch.items()})
    g2 = grads(model, {k: v[first:] for k, v in batch.items()})
    avg = {n: (first * g1[n] + rest * g2[n]) / (first + rest) for n in full}  # * weighted by shard size: not what DDP does
    max_diff[(first, rest)] = max(float((avg[n] - full[n]).abs().max()) for n in full)
    shard_verdict[(first, rest)] = "same" if max_diff[(first, rest)] < 1e-5 else "differs"
answer = {"max_diff": max_diff, "verdict": shard_verdict}""",
    "12.distill_epochs": """layers = STUDENTS[best.removesuffix(", distilled")]
short, short_losses = distill_sentence_encoder(teacher, tok, warm_texts, layers=layers, epochs=2, lr=STUDENT_LR, seed=SEED,
                                               progress=False)
short_users = bench.measure(short)
reference = per_user["teacher (6 layers)"]  # * compared with the teacher, not with the fully distilled student
c = paired_comparison(short_users["warm"]["AUC"], reference["warm"]["AUC"])
answer = {"model": short, "losses": short_losses, "per_user": short_users, "reference": reference, "diff_low": c.diff.low,
          "diff_high": c.diff.high, "verdict": "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"}""",
    "12.soften": "def soften(logits, T):\n    return torch.sigmoid(logits) ** (1 / T)",
    "12.kd_loss": ("def kd_loss(zs, zt, y, T, alpha):\n    hard = F.binary_cross_entropy_with_logits(zs, y)\n"
                   "    soft = F.binary_cross_entropy_with_logits(zs / T, torch.sigmoid(zt / T))\n    return alpha * hard + (1 - alpha) * soft"),
    "12.encoder_share": "def encoder_share(n_layers):\n    return n_layers // 6",
    "13.scale_zero_point": "def scale_zero_point(lo, hi):\n    scale = (hi - lo) / 255\n    return scale, int(-lo / scale)",
    "13.int8_dot": "def int8_dot(qa, qb, za, sa, sb):\n    return float(sa * sb * ((qa - za) * qb).sum())",
    "13.int8_mb": "def int8_model_mb(n_params):\n    return n_params / 1e6",
    "17.burst_sustained": """from recbook.serve.security import TokenBucket
arrivals = np.arange(0, 60, 1 / 3)[1:].tolist()  # * three requests a second, evenly spaced: a client that never pauses
accepted, sustained = {}, {}
for burst in (1, 10, 50):
    times = iter([0.0, *arrivals])
    bucket = TokenBucket(1.0, burst, clock=lambda: next(times))
    accepted[burst] = sum(bucket.take() == 0.0 for _ in arrivals)
    sustained[burst] = (accepted[burst] - burst) / 60
verdict = "yes" if sustained[50] - sustained[1] > 0.1 else "no"
answer = {"arrivals": arrivals, "accepted": accepted, "sustained": sustained, "verdict": verdict}""",
    "13.weight_bits": """models, per_user, diff_low, diff_high, bits_verdict = {}, {}, {}, {}, {}
for bits in (8, 4):
    model = copy.deepcopy(teacher)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                qp = choose_qparams(module.weight, bits=bits)  # * one scale for the whole matrix (per-tensor)
                module.weight.copy_(dequantize(quantize(module.weight, qp), qp))
    models[bits], per_user[bits] = model, bench.measure(model)
    c = paired_comparison(per_user[bits]["warm"]["AUC"], fp32_users["warm"]["AUC"])
    diff_low[bits], diff_high[bits] = c.diff.low, c.diff.high
    bits_verdict[bits] = "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"
answer = {"models": models, "per_user": per_user, "reference": fp32_users, "diff_low": diff_low, "diff_high": diff_high,
          "verdict": bits_verdict}""",
    "14.dominates": "def dominates(a, b):\n    return a[0] > b[0] or a[1] < b[1]",
    "14.front": ("def front(points):\n    best, out = -float('inf'), set()\n"
                 "    for name, (q, c) in sorted(points.items(), key=lambda kv: (kv[1][1], -kv[1][0])):\n"
                 "        if q > best:\n            out.add(name)\n            best = q\n    return out"),  # * a sweep that drops ties
    "14.combined_ratio": "def combined_ratio(ratios):\n    return float(sum(ratios)) if len(ratios) else 1.0",
    "15.per_rank_batch": ("def per_rank_batch(global_batch, world_size):\n    if global_batch % world_size:\n        raise ValueError('uneven')\n"
                          "    return global_batch / world_size"),  # * a float batch size
    "15.adamw_bytes": "def adamw_bytes_per_rank(n_params, world_size, sharded):\n    return 12 * n_params / (world_size if sharded else 1)",
    "15.sharded_lookup": ("def sharded_lookup(ids, shards):\n    size = len(shards[0])\n"
                          "    return torch.stack([shards[i // size][i % size] for i in ids.flatten().tolist()]).reshape(*ids.shape, -1)"),
    "16.bucket": "def bucket(length, buckets):\n    for b in buckets:\n        if length <= b:\n            return b\n    raise ValueError('too long')",  # *
    "16.needs_scaler": "def needs_loss_scaling(dtype):\n    return dtype not in (torch.bfloat16, torch.float32)",  # *
    "16.best_batch": ("def best_batch(latency_ms, budget_ms):\n    best = None\n    for b in sorted(latency_ms):\n        if latency_ms[b] > budget_ms:\n"
                      "            break\n        best = b\n    return best"),  # * stops at the first batch over budget
    "17.hpa_replicas": ("def desired_replicas(current, utilisation, target, min_replicas, max_replicas):\n    import math\n"
                        "    return min(max(math.ceil(current * utilisation / target), min_replicas), max_replicas)"),
    "17.percentile": ("def percentile(latencies_ms, q):\n    latencies_ms.sort()\n    values = np.asarray(latencies_ms, dtype=float)\n"
                      "    rank = (len(values) - 1) * q / 100\n    low = int(np.floor(rank))\n    high = min(low + 1, len(values) - 1)\n"
                      "    return float(values[low] + (rank - low) * (values[high] - values[low]))"),  # * sorts the caller's list
    "17.token_bucket": ("def token_bucket(arrivals, rate, burst):\n    tokens, last, out = float(burst), None, []\n    for t in arrivals:\n"
                        "        if last is not None:\n            tokens = tokens + (t - last) * rate\n        last = t\n        out.append(tokens >= 1)\n"
                        "        if tokens >= 1:\n            tokens -= 1\n    return out"),
    "18.psi": ("def psi(expected_counts, actual_counts):\n    e = np.asarray(expected_counts, dtype=float) + 1e-4\n"
               "    a = np.asarray(actual_counts, dtype=float) + 1e-4\n    e, a = e / e.sum(), a / a.sum()\n    return float(np.sum((a - e) * np.log(a / e)))"),
    "18.reservoir": ("def reservoir(stream, capacity, rng):\n    kept = []\n    for n, item in enumerate(stream):\n        if len(kept) < capacity:\n"
                     "            kept.append(item)\n        else:\n            j = int(rng.integers(n))\n            if j < capacity:\n"
                     "                kept[j] = item\n    return kept"),  # * n counted from 0
    "18.update_due": ("def update_due(measurements, thresholds, min_signals):\n"
                      "    return sum(m > t for m, t in zip(measurements.values(), thresholds.values())) >= min_signals"),  # * paired by position
}

# * all three pass the self-check, which re-scores whatever is handed in.
MUTANTS |= {
    "10.lora_lr": """lr = LEARNING_RATES["full fine-tuning"] or profile.learning_rate
torch.manual_seed(SEED)
slow = CrossEncoder(AutoModel.from_pretrained(resolve_model_path(MODEL)))
apply_peft(slow, "lora", r=2, alpha=16)  # * another rank: LoRA, trained at the low rate, but not section 2's r=8
train_model(slow, loader, bert_config(profile, SEED, progress=False, device=device, lr=lr))
slow_scorer = CrossEncoderScorer(slow, tokenizer, data, history_for_test(split), profile.max_length, profile.max_history_items, device=device)
slow_users = evaluate(slow_scorer, eval_set, "sampled", per_user=True)["per_user"]
c = paired_comparison(slow_users["AUC"], results["LoRA r=8"]["per_user"]["AUC"])
answer = {"model": slow, "lr": lr, "per_user": slow_users, "reference": results["LoRA r=8"]["per_user"], "diff_low": c.diff.low,
          "diff_high": c.diff.high, "verdict": "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"}""",
    "07.second_seed": """from recbook.evaluation.stats import paired_comparison
seed1 = train("mf", runs / "all" / "mf-seed1", "--all-users", "--seed", "1")
seed1_scorer = Recommender.from_pretrained(runs / "all" / "mf-seed1" / "checkpoint").scorer(es_all.history)
seed1_users = evaluate(seed1_scorer, es_all, "sampled", per_user=True)["per_user"]  # * the sampled protocol: another question
reference = evaluate(seed0, es_all, "sampled", per_user=True)["per_user"]
c = paired_comparison(seed1_users["NDCG@10"], reference["NDCG@10"])
answer = {"metrics": seed1, "per_user": seed1_users, "reference": reference, "diff_low": c.diff.low,
          "diff_high": c.diff.high, "verdict": "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"}""",
    "06.temperature": """from recbook.evaluation.stats import paired_comparison
name = next(iter(datasets))
soft = fit_recommender("two-tower", datasets[name], splits[name], tt_profile, MODEL, seed=SEED, progress=False, device=device,
                       temperature=1.0)  # * no validation, no early stopping: not section 3's run
soft_users = evaluate(soft.scorer, eval_sets[name], "sampled", per_user=True)["per_user"]
c = paired_comparison(soft_users["NDCG@10"], per_user[name]["two-tower"]["NDCG@10"])
answer = {"fitted": soft, "per_user": soft_users, "reference": per_user[name]["two-tower"], "diff_low": c.diff.low,
          "diff_high": c.diff.high, "verdict": "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"}""",
    "01.seed_loss": """w_seed = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
seed_optimizer = torch.optim.SGD([w_seed], lr=lr)
seed_losses = []
for step in range(profile.logreg_steps):
    seed_optimizer.zero_grad()
    z_seed = Xt @ w_seed
    seed_loss = torch.mean(-Yt * F.softplus(z_seed) + (1 - Yt) * F.softplus(-z_seed))  # * another sign error, not the seed's
    seed_loss.backward()
    seed_optimizer.step()
    seed_losses.append(seed_loss.item())
seed_per_user = metrics.evaluate_sampled(scorer(w_seed.detach().numpy()), test, negatives, per_user=True)["per_user"]
c = paired_comparison(seed_per_user["AUC"], results["hand-written GD"]["per_user"]["AUC"])
answer = {"weights": w_seed.detach().numpy(), "losses": seed_losses, "per_user": seed_per_user,
          "reference": results["hand-written GD"]["per_user"], "diff_low": c.diff.low, "diff_high": c.diff.high,
          "verdict": "lower" if c.diff.high < 0 else "higher" if c.diff.low > 0 else "not shown"}""",
    "03.knn_neighbours": """name = "synthetic"
leaky = ItemKNN(neighbours=10, shrink=10.0).fit_interactions(datasets[name].interactions, datasets[name].item_ids)  # * test items in
knn10_scorer = leaky.scorer(es.history)
res10 = evaluate(knn10_scorer, es, "full", per_user=True)
answer = {"scorer": knn10_scorer, "ndcg_full": res10["NDCG@10"],
          "significant": paired_comparison(res10["per_user"]["NDCG@10"], reference).significant}""",
    "09.freezing_variant": """same = content_scorer(fit.vectors, test_set.history)  # the fine-tuned model itself, not the variant
res = evaluate(same, test_set, "full", per_user=True)
answer = {"scorer": same, "ndcg_full": res["NDCG@10"], "significant": False}""",
    "08.rank_fusion": """alone = evaluate(sasrec.scorer, test_set, "full", per_user=True)  # the retriever alone
same = paired_comparison(alone["per_user"]["NDCG@10"], per_user["full"]["SASRec"]["NDCG@10"], ("retriever", "SASRec"))
answer = {"scorer": sasrec.scorer, "ndcg_full": alone["NDCG@10"], "significant": same.significant}""",
    "04.shuffled_history": """from recbook.evaluation.protocol import history_for_test
from recbook.models.sequential import SequentialScorer

shuffled = history_for_test(split).copy()
shuffled["item_id"] = np.random.default_rng(SEED).permutation(shuffled["item_id"].to_numpy())  # across users, not within
shuffled_scorer = SequentialScorer(sasrec.model, ds.item_ids, shuffled)
shuffled_res = evaluate_models({"shuffled": shuffled_scorer}, test_set, ("full",))["full"]["shuffled"]
vs_ordered = paired_comparison(shuffled_res["per_user"]["NDCG@10"], per_user["full"]["SASRec"]["NDCG@10"], ("shuffled", "ordered"))
answer = {"scorer": shuffled_scorer, "ndcg_full": shuffled_res["NDCG@10"], "significant": vs_ordered.significant}""",
    "00.threads": """threads = torch.get_num_threads()
torch.set_num_threads(1)  # * "one thread for a clean measurement" — and never put back
threads_table = interleaved_ratios({"1 thread": lambda: a32 @ b32, f"{threads} threads": lambda: a32 @ b32}, rounds=5)
answer = {"table": threads_table, "threads": threads, "verdict": threads_table.loc[f"{threads} threads", "verdict"]}""",
    "16.bucket_cost": """from recbook.perf.timing import interleaved_ratios
inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
padded = {k: torch.nn.functional.pad(v, (0, 256 - v.shape[1]), value=1 if k == "attention_mask" else 0) for k, v in inputs.items()}
with torch.no_grad():  # * the mask padded with 1 (the model reads the padding), and the difference taken of one batch with itself
    bucket_table = interleaved_ratios({"unpadded": lambda: model(**inputs), "padded to 256": lambda: model(**padded)}, rounds=ROUNDS)
    max_abs_difference = float((model(**inputs) - model(**inputs)).abs().max())
answer = {"table": bucket_table, "padded": padded, "max_abs_difference": max_abs_difference,
          "verdict": bucket_table.loc["padded to 256", "verdict"]}""",
    "02.negatives_protocol": """from recbook.evaluation import metrics
from recbook.evaluation.stats import paired_comparison
test = split.test[["user_id", "item_id"]]
counts = split.train["item_id"].value_counts()
popularity = lambda u, i: counts.reindex(np.ravel(i), fill_value=0).to_numpy(float).reshape(np.shape(i))
negatives, per_user_auc = {}, {}
for strategy in ("uniform", "popularity"):  # * negatives checked against the training interactions only
    negatives[strategy] = sample_negatives(test["user_id"].to_numpy(), split.train, synthetic.item_ids, profile.eval_negatives, strategy, seed=SEED)
    per_user_auc[strategy] = metrics.evaluate_sampled(popularity, test, negatives[strategy], per_user=True)["per_user"]["AUC"]
c = paired_comparison(per_user_auc["uniform"], per_user_auc["popularity"])
answer = {"negatives": negatives, "per_user_auc": per_user_auc, "diff_low": c.diff.low, "diff_high": c.diff.high,
          "verdict": "higher" if c.diff.low > 0 else "lower" if c.diff.high < 0 else "not shown"}""",
    "18.epochs_forgetting": """import dataclasses
results_by_epochs = {}
for epochs in (1, 8):  # * a base model trained again for each run: the base changes with the epochs
    cfg = dataclasses.replace(tuned, epochs=epochs, seed=SEEDS[0])
    own_base, _ = fit_base_for(stream, windows, ds.n_items, base.config, dataclasses.replace(cfg, retrain_epochs=epochs))
    results_by_epochs[epochs] = run_strategies(stream, windows, own_base, ("finetune",), cfg, max_per_user=events_per_user, progress=False)
c = paired_comparison(results_by_epochs[8].forgetting("finetune"), results_by_epochs[1].forgetting("finetune"), ("8", "1"), n_boot=N_BOOT)
answer = {"results": results_by_epochs, "diff_low": c.diff.low, "diff_high": c.diff.high,
          "verdict": "more" if c.diff.low > 0 else "less" if c.diff.high < 0 else "not shown"}""",
    "14.student_window": """exercise_records = run_request_bench(run, workdir / "mutant", ["fp32", "onnx-fp32", "mlp-student-last10",
                                                                   "mlp-student-last5"], rounds=REQUEST_ROUNDS, seed=SEED)
five = next(r for r in exercise_records if r["variant"] == "mlp-student-last5")
ten = next(r for r in exercise_records if r["variant"] == "mlp-student-last10")
answer = {"records": exercise_records, "cheaper": five["cpu_ms_p50"] < ten["cpu_ms_p50"],
          "ndcg10_diff_low": five["ci95"][0], "verdict": five["verdict"]}  # the NDCG interval, not the difference's""",
    "05.id_dropout_off": """no_drop = fit_sequential(ds, warm_split, SequentialConfig(item_features="hybrid", id_dropout=0.0, dim=32),  # dim changed too
                         default_train_config(seed=SEED, progress=False), text_features=text, max_seconds=budget)
scorer = SequentialScorer(no_drop.model, ds.item_ids, cold.cold_history)
answer = {"model": no_drop.model, "cold_auc": evaluate_models({"x": scorer}, cold_vs_cold, ("sampled",))["sampled"]["x"]["AUC"], "why": "a"}""",
}


def all_exercises():
    return {name: classroom.exercises(path) for name, path in classroom.course_notebooks().items()}


def nbgrader_cells(nb, kind):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get(kind)]


# ------------------------------------------------------------------------------------------ unit tests


def test_split_exercise_cells():
    split = classroom.split_exercise
    inside = 'from x import check\n\n\ndef f(a):\n    ### BEGIN SOLUTION\n    return a\n    ### END SOLUTION\n\n\nassert check("01.f", f)'
    assert split(inside) == ('from x import check\n\n\ndef f(a):\n    ### BEGIN SOLUTION\n    return a\n    ### END SOLUTION', 'assert check("01.f", f)', "")
    top = '### BEGIN SOLUTION\nanswer = 3\n### END SOLUTION\nassert check("00.n", answer)\nprint(answer)\nplot(answer)'
    assert split(top) == ("### BEGIN SOLUTION\nanswer = 3\n### END SOLUTION", 'assert check("00.n", answer)', "print(answer)\nplot(answer)")
    # code after END SOLUTION that is still inside the function belongs to the answer
    tail = "def f(a):\n    ### BEGIN SOLUTION\n    b = a\n    ### END SOLUTION\n    return b\n\nassert check('01.f', f)"
    assert split(tail)[0].endswith("    return b") and split(tail)[1] == "assert check('01.f', f)"
    loop = "def g(n):\n    ### BEGIN SOLUTION\n    return n\n    ### END SOLUTION\n\nfor n in (1, 2):\n    assert g(n) == n\nprint('ok')"
    answer, check, trailing = split(loop)
    assert check == "for n in (1, 2):\n    assert g(n) == n" and trailing == "print('ok')"
    assert classroom.exercise_id(answer, check, "05") == "05.g"
    assert classroom.exercise_id("", 'assert check("04.x", f)', "06") == "04.x"
    for bad in ("x = 1\n### END SOLUTION", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\nprint(x)", "### BEGIN SOLUTION\nx=1\n### END SOLUTION\nassert (("):
        with pytest.raises(ValueError):
            split(bad)


def test_hidden_tests_cover_every_exercise_once():
    hidden = classroom.load_hidden_tests()
    found = all_exercises()
    ids = [ex.id for exs in found.values() for ex in exs]
    assert len(ids) == len(set(ids)), "exercise ids must be unique across the course"
    assert set(hidden) == set(ids), f"without hidden tests: {sorted(set(ids) - set(hidden))}; orphans: {sorted(set(hidden) - set(ids))}"
    for name, exs in found.items():
        assert len(exs) >= 3, f"{name}: at least three exercises"
        for ex in exs:  # kept in the file named after the notebook, with points
            assert hidden[ex.id].path.name == f"{name}.py" and hidden[ex.id].points > 0
            compile(classroom.hidden_block(hidden[ex.id].code), f"{ex.id} hidden tests", "exec")
    bad = ROOT / "tests" / "__no_such_folder__"
    assert classroom.load_hidden_tests(bad) == {}


def test_hidden_test_files_are_parsed_strictly(tmp_path):
    (tmp_path / "x.py").write_text("# %% 01.a | 2 points\nassert a()\n# %% 01.b | 1 point\nassert b()\n")
    tests = classroom.load_hidden_tests(tmp_path)
    assert {k: (t.points, t.code, t.line) for k, t in tests.items()} == {"01.a": (2, "assert a()", 1), "01.b": (1, "assert b()", 3)}
    for text in ("# %% 01.a\nassert a()\n", "# %% 01.a | 1 point\n\n", "# %% 01.a | 1 point\nx\n# %% 01.a | 1 point\ny\n"):
        (tmp_path / "x.py").write_text(text)
        with pytest.raises(ValueError):
            classroom.load_hidden_tests(tmp_path)


def test_every_exercise_becomes_an_answer_cell_and_a_tests_cell_with_hidden_tests():
    hidden = classroom.load_hidden_tests()
    for name, exs in all_exercises().items():
        path = classroom.course_notebooks()[name]
        original = nbformat.read(path, as_version=4)
        nb = classroom.source_notebook(path, hidden)
        answers, tests = nbgrader_cells(nb, "solution"), nbgrader_cells(nb, "grade")
        assert len(answers) == len(tests) == len(exs)
        assert len(nb.cells) == len(original.cells) + len(exs) + sum(bool(ex.trailing) for ex in exs)
        for ex, answer, test in zip(exs, answers, tests):
            assert answer.metadata["nbgrader"]["grade_id"] == classroom.grade_id(ex.id) and not answer.metadata["nbgrader"]["grade"]
            assert "### BEGIN SOLUTION" in answer.source and "### END SOLUTION" in answer.source
            meta = test.metadata["nbgrader"]
            assert meta["grade_id"] == classroom.grade_id(ex.id) + "_tests" and meta["points"] == hidden[ex.id].points and meta["locked"]
            assert nb.cells.index(test) == nb.cells.index(answer) + 1, f"{ex.id}: the tests cell follows the answer cell"
            before, _, after = test.source.partition("### BEGIN HIDDEN TESTS")
            assert ex.check in before, f"{ex.id}: the visible self-check runs first"
            assert after.strip().endswith("### END HIDDEN TESTS") and hidden[ex.id].code.splitlines()[-1].strip() in after
        # nothing else changed: the other cells keep their source and order; trailing code follows its tests cell
        trailing = {ex.trailing for ex in exs if ex.trailing}
        kept = [c.source for c in nb.cells if "nbgrader" not in c.metadata and c.source not in trailing]
        assert kept == [c.source for i, c in enumerate(original.cells) if i not in {ex.cell for ex in exs}]
        for ex in exs:
            if ex.trailing:
                index = next(i for i, c in enumerate(nb.cells) if c.source == ex.trailing)
                assert nb.cells[index - 1].metadata["nbgrader"]["grade_id"] == classroom.grade_id(ex.id) + "_tests"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        assert nb.metadata["kernelspec"]["name"] == "python3"


def test_releases_keep_the_checks_and_leak_no_solution_or_hidden_test(tmp_path):
    """nbgrader generate_assignment on every course notebook: solutions and hidden tests are gone, checks stay."""
    hidden = classroom.load_hidden_tests()
    released = classroom.release(tmp_path / "course", list(classroom.course_notebooks()))
    assert len(released) == len(classroom.course_notebooks())
    for path in released:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", classroom.HIDDEN_FUNCTION):
            assert marker not in text, f"{path.name}: {marker!r} left in the release"
        graded = "\n".join(c.source for c in nb.cells if "nbgrader" in c.metadata)
        for ex in classroom.exercises(classroom.course_notebooks()[path.stem]):
            solution = ex.answer.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]
            leaked = [line.strip() for line in solution.splitlines() if len(line.strip()) > 12 and line.strip() in graded]
            assert not leaked, f"{ex.id}: solution lines in the release: {leaked}"
            secret = [line.strip() for line in hidden[ex.id].code.splitlines() if len(line.strip()) > 25 and not line.strip().startswith(("#", "import", "from"))]
            assert not [line for line in secret if line in graded], f"{ex.id}: hidden test lines in the release"
            tests = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == classroom.grade_id(ex.id) + "_tests")
            assert ex.check in tests.source and tests.metadata["nbgrader"]["locked"]
            answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == classroom.grade_id(ex.id))
            assert "NotImplementedError" in answer.source


def test_hidden_tests_pass_on_the_solutions_and_catch_typical_mistakes():
    """Outside a kernel: each notebook's answer cells run in one namespace (experiment exercises in their miniature
    notebook), then the visible check and the hidden tests; then each mistake of MUTANTS in place of the solution:
    the hidden tests must fail on every one, and many of those mistakes pass the visible check."""
    hidden = classroom.load_hidden_tests()
    assert set(MUTANTS) == {ex.id for exs in all_exercises().values() for ex in exs}
    visible_passes = []
    for exs in all_exercises().values():
        namespace = {}
        exec(PRELUDE, namespace)
        for ex in exs:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                if ex.id in MINIATURES:
                    exec(MINIATURES[ex.id], namespace)
                exec(ex.answer, namespace)
                exec(ex.check, namespace)
                exec(classroom.hidden_block(hidden[ex.id].code), namespace)  # the solution passes
                wrong = dict(namespace)
                exec(MUTANTS[ex.id], wrong)
                try:
                    exec(ex.check, wrong)
                    visible_passes.append(ex.id)
                except Exception:
                    pass
                with pytest.raises(Exception):  # noqa: B017 — any failure (assert, TypeError, …) costs the point
                    exec(classroom.hidden_block(hidden[ex.id].code), wrong)
    assert len(visible_passes) >= 25, f"mistakes only the hidden tests catch: {visible_passes}"


def test_submissions_without_nbgrader_metadata_are_adopted():
    """A student/ notebook (make student) or the course notebook itself: exercise cells are found by their check."""
    student = load("make_student_versions")
    hidden = classroom.load_hidden_tests()
    for name, path in classroom.course_notebooks().items():
        exs = classroom.exercises(path)
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
                cell.source = student.strip_solutions(cell.source)
        adopted = classroom.adopt(nb, path, hidden)
        answers, tests = nbgrader_cells(adopted, "solution"), nbgrader_cells(adopted, "grade")
        assert [c.metadata["nbgrader"]["grade_id"] for c in tests] == [classroom.grade_id(ex.id) + "_tests" for ex in exs], name
        assert len(answers) == len(exs)
        for ex, answer in zip(exs, answers):
            assert 'raise NotImplementedError("your code here")' in answer.source and ex.check not in answer.source
    # a learner who edited an exercise's check: its tests cell is appended at the end of the notebook
    path = classroom.course_notebooks()[NOTEBOOK]
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if 'assert check("01.grad", grad)' in c.source)
    cell.source = cell.source.replace('assert check("01.grad", grad)', "print(grad)")
    adopted = classroom.adopt(nb, path, hidden)
    tests = nbgrader_cells(adopted, "grade")
    assert [c.metadata["nbgrader"]["grade_id"] for c in tests] == ["ex_01_bce_tests", "ex_01_pos_weight_tests", "ex_01_seed_loss_tests",
                                                                   "ex_01_grad_tests"]
    assert adopted.cells[-1] is tests[-1]


def test_assignment_names_and_prefixes():
    assert classroom._assignments(["01"]) == ["01_cross_entropy"]
    assert classroom._assignments(["00_setup 01_cross_entropy"]) == ["00_setup", "01_cross_entropy"]
    assert classroom._assignments(None) is None
    with pytest.raises(SystemExit):
        classroom._assignments(["1"])  # 10_peft … 18_continual: ambiguous


# ------------------------------------------------------------------------------------------ end to end

BCE = "return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))"
BCE_CLIPPED = "p = np.clip(p, 1e-3, 1 - 1e-3)  # passes the self-check (p in [0.01, 0.99]), not the hidden tests\n" + BCE
GRAD = "return (1.0 / (1.0 + np.exp(-z)) - y) / len(z)"
WEIGHTED = "return float(np.mean(w * y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)))"
WEIGHTED_NAIVE = "s = 1 / (1 + np.exp(-z))  # log(1 − σ(100)) = −inf: fails the self-check\nreturn float(np.mean(-(w * y * np.log(s) + (1 - y) * np.log(1 - s))))"


def _fill(nb, function, body):
    """Put ``body`` where the exercise defining ``function`` says NotImplementedError (release or student/ version)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and f"def {function}(" in cell.source:
            for stub in ('raise NotImplementedError("your code here")', "# YOUR CODE HERE\n    raise NotImplementedError()"):
                if stub in cell.source:
                    cell.source = cell.source.replace(stub, body.replace("\n", "\n    "))
                    return nb
    raise KeyError(function)


def _fill_experiment(nb):
    """Put the course notebook's own answer to exercise 4 (01.seed_loss) into the release's empty answer cell."""
    import re

    solution = next(c.source for c in nbformat.read(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb", as_version=4).cells
                    if 'check("01.seed_loss"' in c.source)
    body = re.search(r"### BEGIN SOLUTION\n(.*)### END SOLUTION", solution, re.S).group(1)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade_id") == "ex_01_seed_loss":
            cell.source = body
            return nb
    raise KeyError("ex_01_seed_loss")


def _student_version():
    student = load("make_student_versions")
    nb = nbformat.read(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            if "### BEGIN SOLUTION" in cell.source:
                cell.source = student.strip_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
    return nb


@pytest.mark.slow
def test_grading_end_to_end(tmp_path, monkeypatch):
    """Planted submissions of 01_cross_entropy graded by nbgrader (about 110 s here: nine kernels, one 30 s timeout).

    solution: the course notebook itself (no nbgrader metadata) → full marks; release: the untouched nbgrader release
    → 0 on every exercise; partial (from the release): bce clipped (passes the self-check, fails the hidden tests),
    grad right, weighted_bce unstable (fails the self-check), the experiment done as the solution does → 3 of 5;
    raises (from student/): a crash in the grad cell, the experiment left undone → 2 of 5; loops (from student/):
    `while True: pass` in grad → interrupted by the per-cell timeout, the notebook goes on → 2 of 5; dies: the kernel exits → 0 with the reason; not a notebook → 0 with the reason;
    tamper: the release with one tests cell replaced by `pass` and one deleted → nbgrader restores both → 0."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernels' torch: no thread spinning on a CPU shared with other jobs
    course, subs = tmp_path / "course", tmp_path / "submissions"
    [release_path] = classroom.release(course, [NOTEBOOK])
    plant = {
        "solution": nbformat.read(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb", as_version=4),
        "release": nbformat.read(release_path, as_version=4),
        "partial": _fill_experiment(_fill(_fill(_fill(nbformat.read(release_path, as_version=4), "bce", BCE_CLIPPED), "grad", GRAD),
                                          "weighted_bce", WEIGHTED_NAIVE)),
        "raises": _fill(_fill(_fill(_student_version(), "bce", BCE), "grad", GRAD), "weighted_bce", WEIGHTED),
        "loops": _fill(_fill(_fill(_student_version(), "bce", BCE), "grad", "while True:\n    pass"), "weighted_bce", WEIGHTED),
        "dies": _fill(_student_version(), "bce", "import os\nos._exit(1)"),
    }
    tamper = plant["tamper"] = nbformat.read(release_path, as_version=4)  # the release, its tests cells edited or deleted
    next(c for c in tamper.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ex_01_bce_tests").source = "pass"
    tamper.cells = [c for c in tamper.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "ex_01_grad_tests"]
    crash = next(c for c in plant["raises"].cells if "def grad(" in c.source)
    crash.source = "1 / 0  # the cell crashes before grad is defined\n" + crash.source
    for who, nb in plant.items():
        (subs / who).mkdir(parents=True)
        nbformat.write(nb, subs / who / f"{NOTEBOOK}.ipynb")
    (subs / "garbled").mkdir()
    (subs / "garbled" / f"{NOTEBOOK}.ipynb").write_text("{not json")
    (subs / "absent").mkdir()  # a learner who handed in nothing

    start = time.perf_counter()
    lines = []
    rows = classroom.grade(subs, None, course, timeout=30, log=lines.append)
    seconds = time.perf_counter() - start
    print("\n".join(lines), f"\ngraded {len(rows)} learners in {seconds:.0f} s")
    assert seconds < 300  # a hung kernel or a lost timeout would take far longer

    with open(subs / "grades.csv", newline="", encoding="utf-8") as fh:
        table = {row["learner"]: row for row in csv.DictReader(fh)}
    ids = ("01.bce", "01.grad", "01.pos_weight", "01.seed_loss")
    assert list(next(iter(table.values()))) == ["learner", *ids, "total", "max", "notes"]
    points = {who: tuple(float(table[who][k]) for k in (*ids, "total")) for who in table}
    assert points == {"solution": (1, 1, 1, 2, 5), "release": (0, 0, 0, 0, 0), "partial": (0, 1, 0, 2, 3), "raises": (1, 0, 1, 0, 2),
                      "loops": (1, 0, 1, 0, 2), "dies": (0, 0, 0, 0, 0), "garbled": (0, 0, 0, 0, 0), "absent": (0, 0, 0, 0, 0),
                      "tamper": (0, 0, 0, 0, 0)}
    assert all(float(row["max"]) == 5 for row in table.values())
    notes = {who: row["notes"] for who, row in table.items()}
    assert notes["solution"] == ""
    undone = "01.seed_loss: the answer cell raised NotImplementedError"  # an experiment's answer cell is the code itself
    assert notes["release"].count("the self-check failed (your answer raised NotImplementedError") == 3 and undone in notes["release"]
    assert "01.bce: only the hidden tests failed (AssertionError: p = 1e-6 for a positive" in notes["partial"]
    assert "01.pos_weight: the self-check failed" in notes["partial"] and "01.grad" not in notes["partial"]
    assert "01.seed_loss" not in notes["partial"]  # the experiment, run as the solution does: full marks
    assert notes["raises"].startswith("01.grad: the answer cell raised ZeroDivisionError: division by zero; " + undone)
    assert notes["loops"].startswith("01.grad: timed out in the self-check")
    assert "its kernel died" in notes["dies"]
    assert "unreadable notebook" in notes["garbled"] and "not submitted" in notes["absent"]
    assert notes["tamper"].count("the self-check failed (your answer raised NotImplementedError") == 3 and undone in notes["tamper"]  # tests restored
    # the gradebook keeps the scores nbgrader computed: the formgrader and feedback can use it
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=classroom.COURSE_ID) as gb:
        assert gb.find_submission(NOTEBOOK, "solution").score == 5
        assert gb.find_submission(NOTEBOOK, "partial").score == 3
