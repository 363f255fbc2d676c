"""The source of notebooks/09_lm_recommender.ipynb (cells as Python strings): ``python tools/nb09_source.py`` writes the
notebook without outputs; ``python tools/run_course.py 09`` then executes it and stores the outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat

from recbook_course import release

ROOT = Path(__file__).resolve().parents[1]
NAME = "09_lm_recommender"

TITLE = f"""# 09 · A fine-tuned language model in the item representation: `lmrec`

Notebooks `06`–`08` fine-tuned BERT to read (history, candidate) text pairs and measured those models against a
plain SASRec (their own results say how they fared); a cross-encoder costs one BERT pass per candidate on every
request. Here the language model
goes where it is cheap and where text carries information IDs do not: into the **item representation**. The top layer
of all-MiniLM-L6-v2 is fine-tuned on what people watch next (the lower layers are frozen and run once per catalogue),
every film gets a vector from it, and a SASRec reads the user's history through a table that adds that text vector to
a learned ID vector. We measure it on **all** MovieLens users, full ranking, against SASRec with IDs only trained by
the same recipe and against baselines (popularity, and item-kNN, EASE and MF-BPR tuned on validation) — every
comparison paired, every verdict read off its own interval. Whether the language model earns its place is the
question of sections 5–7, answered by this run's intervals.

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/recbook/recbook/blob/v0.1.0/student/{NAME}.ipynb)

**Time:** 1815 s in the latest run (about half an hour), `quick` profile, on a 2-core CPU the notebook has to itself — about a dozen SASRec-style
fits with early stopping (lmrec's two `text_loss` candidates included, most of them refitted on training + validation),
the encoder fine-tuned four times, and a tuning grid per baseline; section 5c's extra seeds are the longest part
(`N_SEEDS = 1` skips them). Every stage's duration is printed, and the total at the end. That is over the course's 3-minute budget per notebook; `full` not yet timed on a GPU. Place in the course: after `04_sequential`, `05_sequential_cold_start`
(frozen text features) and `08_cascade`.
"""

SETUP = release.install_cell_source(release.extras_for(NAME))

PARAMETERS = """PROFILE = None  # "quick" | "full" | None (= $RECBOOK_PROFILE, else by device)
SEED = 0
MOVIELENS_DIR = None  # a folder with u.data/u.item/u.user; None = $RECBOOK_MOVIELENS_DIR, the cache, else download (not if RECBOOK_OFFLINE=1)
BACKBONE = None  # the sentence encoder; None = offline all-MiniLM-L6-v2
TRAINABLE_LAYERS = 1  # top blocks of the encoder fine-tuned (0 = frozen)
LM_STEPS = None  # the encoder's fine-tuning steps; None = lmrec's default
FREEZE_STEPS = 20  # section 2: optimizer steps per freezing choice (timed, then its vectors judged on validation)
COLD_FRACTION = 0.1  # section 7: the newest share of films held out of training entirely (cold start)
N_SEEDS = 3  # section 5c: seeds per trained model (1 skips the extra fits, the longest part of the notebook)
N_BOOT = 2000  # bootstrap resamples per confidence interval
"""

OBJECTIVES = """## Learning objectives

- Put a language model where its cost is paid once per item, not once per request, and say what that buys (cold
  start) and what it costs.
- Compare the freezing choices of the course's source article (the Chinese article this course grew from: which layers of the pretrained model are trained: none, only the
  top ones, an adapter, or all) by what a CPU pays per step: the top 1 or 2 layers over cached lower layers, LoRA on
  every block, every layer (a frozen encoder costs no training step at all).
- Judge a model the way users meet it: full-ranking NDCG@10 on every user, against baselines and the ID-only
  SASRec trained by the same recipe, each comparison paired.
- Fix a ranking bug: items never trained on must not outrank trained ones (exercise 1).
"""

IMPORTS = """# NBVAL_IGNORE_OUTPUT
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from recbook.runs.cache import cached_fit
from recbook_course.record import figure_path, record
from recbook.data import leave_last_out, load_movielens_100k, make_synthetic, obtain_movielens_100k
from recbook.data.splits import history_for_test
from recbook.profile import get_profile
from recbook.perf.device import seed_everything
from recbook.evaluation.protocol import evaluate, make_eval_set
from recbook.models import create
from recbook.models.backbone import load_backbone
from recbook.models.text_encoder import TopLayers, cache_lower_layers
from recbook.models.tuning import tune
from recbook.evaluation.stats import ci_text_table, mean_ci, paired_comparison

notebook_start = time.perf_counter()
profile = get_profile(PROFILE)
seed_everything(SEED)
ml_folder = obtain_movielens_100k(MOVIELENS_DIR)
if ml_folder is not None:
    ds = load_movielens_100k(ml_folder)  # all 943 users
else:
    print("Using the synthetic catalogue instead of MovieLens-100k.")
    ds = make_synthetic(seed=SEED, n_users=profile.n_users, n_items=profile.n_items)
split = leave_last_out(ds.interactions, drop_short_users=True)
test_set = make_eval_set(ds, split, "test", profile.eval_negatives, seed=SEED)
print(f"{ds.name}: {ds.n_users} users, {ds.n_items} items; profile {profile.name}; "
      f"test: each user's last item, ranked against every item they have not seen (full ranking)")
"""

WHERE_MD = """## 1. Where the language model goes

Three places a language model can sit in a recommender, and what each costs per request:

| where | per request | a new item |
|---|---|---|
| a **cross-encoder** reads (history, candidate) text | one BERT pass per candidate | scored from its text |
| a **text user tower** reads the history's item texts | one BERT pass per request | scored from its text |
| the **item representation** (here) | none: item vectors are computed when an item enters the catalogue | gets a vector from its text |

`lmrec` takes the third. The encoder is fine-tuned by **next-item contrastive learning**: the mean vector of a user's
three most recent films should be closest to the film they watched next, among the other films of a batch. That
teaches the text encoder what co-occurs in people's histories; a film known only by its title, year and genres then
lands near the films it will be watched with. SASRec's item table is `ID vector + W · text vector`. So that the
text path carries weight of its own — a new film has nothing else — training can add a second softmax that scores
the next film with the text vectors *alone* (`text_loss`), instead of notebook `05`'s ID dropout, which hides half the
ID vectors at every step (the comments of `LMRecConfig` in `recbook/models/lmrec.py` list the validation runs behind this choice).
Whether that second softmax also helps the films people already watch depends on how much the texts say, so `lmrec`
does not assume it: it trains the SASRec stage with and without it, on the same fine-tuned text vectors, and keeps
the one with the better validation NDCG@10 (`text_loss="auto"`, one extra fit).

Only the encoder's **top** `TRAINABLE_LAYERS` block(s) are trained. The lower blocks never change, so their output for
every film is computed once and cached; each training step then runs only the top block(s) instead of the whole
encoder (one of six with the defaults).
"""

COST_MD = """## 2. The freezing choices: what a training step costs, and what it buys

Every step of the fine-tuning runs the trainable blocks forward and backward over the films of a batch. The cell
runs `FREEZE_STEPS` optimizer steps for each choice on the same batches (the frozen layers' cache is built once per
choice and not counted), times them, counts the parameters each one trains, measures how much the steps raise the
process's peak resident memory — and then asks what the steps bought: each choice's item vectors, used alone as a
recommender, are scored on every user's *validation* film and paired with the frozen encoder's. The source article's choices (the article this course grew from) are all here: the top layers only, a parameter-efficient adapter (LoRA,
through the `peft` library) and every layer.
"""

COST = """# NBVAL_IGNORE_OUTPUT
from recbook.models.text_encoder import _ContrastiveTop, _PairBatches, next_item_pairs
from peft import LoraConfig, inject_adapter_in_model
from recbook.perf.timing import peak_memory

encoder, tokenizer = load_backbone(BACKBONE)
texts = ds.items.set_index("item_id").loc[ds.item_ids, "text"].astype(str).tolist()
n_blocks = len(encoder.encoder.layer)
column = pd.Series(np.arange(ds.n_items), index=ds.item_ids)
ordered = split.train.sort_values(["user_id", "timestamp"], kind="stable")
contexts, targets = next_item_pairs({u: column.reindex(g).to_numpy() for u, g in ordered.groupby("user_id")["item_id"]}, 3)
col = column


def content_scorer(vectors, history, n_recent=5):
    \"\"\"Text only: each candidate's cosine to the mean vector of the user's latest films (section 6 uses it too).\"\"\"
    rows = {u: col.reindex(g).to_numpy() for u, g in history.sort_values(["user_id", "timestamp"], kind="stable").groupby("user_id")["item_id"]}

    def score(users, items):
        out = np.zeros(np.shape(items))
        for r, u in enumerate(users):
            h = rows.get(u, np.zeros(0, dtype=int))[-n_recent:]
            if len(h):
                mean = vectors[h].mean(axis=0)
                out[r] = vectors[col.reindex(items[r]).to_numpy()] @ (mean / np.linalg.norm(mean))
        return out
    return score


valid_set = make_eval_set(ds, split, "valid", n_negatives=1, seed=SEED)  # each user's validation film, full ranking


def valid_ndcg(vectors):
    return evaluate(content_scorer(vectors, split.train), valid_set, "full", per_user=True)["per_user"]["NDCG@10"]


states, mask = cache_lower_layers(encoder, tokenizer, texts, n_blocks - 1, max_length=32)
quality = {"frozen (no training)": valid_ndcg(TopLayers(encoder, 1).embed(states, mask))}
choices = {f"top {k} of {n_blocks} (cached lower layers)": (k, False) for k in sorted({1, 2} - {n_blocks})}
choices.update({"all layers": (n_blocks, False), "LoRA r=8 on every block (peft)": (n_blocks, True)})
LORA_LR = 1e-3  # adapters start at zero and train few weights: the usual LoRA rate is ~10× full fine-tuning's (1e-4 here)
cost_rows = {}
for label, (k, lora) in choices.items():
    states, mask = cache_lower_layers(encoder, tokenizer, texts, n_blocks - k, max_length=32)
    top = TopLayers(encoder, k)
    if lora:  # the weights stay frozen; peft adds a trainable low-rank update to each block's query and value
        top.requires_grad_(False)
        top = inject_adapter_in_model(LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]), top)
    net = _ContrastiveTop(top, states, mask, 0.05)
    opt = torch.optim.AdamW([p for p in top.parameters() if p.requires_grad], lr=LORA_LR if lora else 1e-4)
    batches = iter(_PairBatches(contexts, targets, 128, FREEZE_STEPS, SEED))
    seconds = []
    with peak_memory() as memory:  # freed memory is returned to the system first: the choices do not share pages
        for step, batch in enumerate(batches):
            start = time.perf_counter()
            loss = net.training_loss(batch)
            loss.backward()
            opt.step()
            opt.zero_grad()
            if step:  # the first step warms up the allocator
                seconds.append(time.perf_counter() - start)
    quality[label] = valid_ndcg(top.embed(states, mask))
    peak, before = memory["peak_bytes"], memory.get("start_bytes")
    cost_rows[label] = {"trainable parameters": sum(p.numel() for p in top.parameters() if p.requires_grad),
                        "seconds per step": float(np.median(seconds)), "cache MB": states.numel() * 4 / 2**20,
                        "training peak MB": np.nan if peak is None or before is None else (peak - before) / 2**20}
    del net, opt, top, states
cost = pd.DataFrame(cost_rows).T
cost["× top-1 cost"] = cost["seconds per step"] / cost["seconds per step"].iloc[0]
cost["validation NDCG@10, text only"] = [quality[label].mean() for label in cost.index]
print(cost.round(4).to_string())
gain = {label: paired_comparison(quality[label], quality["frozen (no training)"], (label, "frozen"), n_boot=N_BOOT, seed=SEED)
        for label in cost.index}
print(f"frozen encoder: validation NDCG@10 {quality['frozen (no training)'].mean():.4f} (text only)")
for c in gain.values():
    print(c)
"""

COST_RENDER = """top1, every, lora = cost.iloc[0], cost.loc["all layers"], cost.iloc[-1]
display(Markdown(
    f"One step that trains every layer took **{every['× top-1 cost']:.1f}×** as long as one that trains the top block over "
    f"cached lower layers ({every['seconds per step']:.2f} s against {top1['seconds per step']:.2f} s, median of "
    f"{FREEZE_STEPS - 1} steps), and trains {every['trainable parameters'] / top1['trainable parameters']:.0f}× the parameters. "
    + (f"Its steps raised the process's peak memory by {every['training peak MB']:.0f} MB, the top block's by "
       f"{top1['training peak MB']:.0f} MB, LoRA's by {lora['training peak MB']:.0f} MB. Gradients and AdamW's two moments "
       f"add 12 bytes per trained weight ({every['trainable parameters'] * 12 / 2**20:.0f} MB for every layer); the rest is "
       "what the steps hold while they run — activations kept for the backward pass and the framework's working memory "
       "(not separated here). "
       + (f"LoRA, training a fraction of the weights but back-propagating through every block, saves "
          f"{every['training peak MB'] - lora['training peak MB']:.0f} MB against every layer here. "
          if np.isfinite(lora["training peak MB"]) and every["training peak MB"] - lora["training peak MB"] >= 1 else
          "LoRA, training a fraction of the weights but back-propagating through every block, saved no peak memory against "
          "every layer here. " if np.isfinite(lora["training peak MB"]) else "")
       if np.isfinite(every["training peak MB"]) and np.isfinite(top1["training peak MB"]) else "")
    + (f"LoRA trains only {lora['trainable parameters']:,.0f} parameters, yet its step took {lora['× top-1 cost']:.1f}× the "
       "top block's: its blocks' weights never change, but every block still runs forward over every text and carries "
       "the gradient back down to the lowest adapter, so no layer's output can be cached. " if lora["× top-1 cost"] > 1 else
       f"LoRA trains {lora['trainable parameters']:,.0f} parameters at {lora['× top-1 cost']:.1f}× the top block's step. ")
    + f"At the same wall-clock budget the top-layer choice takes about {every['× top-1 cost']:.0f}× as many steps as "
    f"every-layer training. The cached token states the steps read take {top1['cache MB']:.0f} MB for the top choice "
    "(the `cache MB` column gives each choice's). The time per step is a median of a few steps: "
    "its ratio is likelier than its value to carry over to another machine (on a GPU it may differ). The `cache MB` "
    "column is the cached token states the steps read: the lower layers' output for the top choices, the embedding "
    "layer's output for every-layer training and LoRA."))
display(Markdown(
    f"**What {FREEZE_STEPS} steps bought.** Each choice's vectors, used alone as a recommender (cosine to the user's "
    f"latest films), on the validation film of every user, against the frozen encoder's "
    f"{quality['frozen (no training)'].mean():.4f}: "
    + "; ".join(f"{label} {c.mean_a:.4f}, {c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}] "
                f"({'better' if c.diff.low > 0 else 'worse' if c.diff.high < 0 else 'inconclusive'})" for label, c in gain.items())
    + f". {FREEZE_STEPS} steps take about {top1['seconds per step'] * FREEZE_STEPS:.0f} s for the top block and "
    f"{every['seconds per step'] * FREEZE_STEPS:.0f} s for every layer (median step × {FREEZE_STEPS}). A short, equal step "
    "budget, one seed, each choice paired with the frozen encoder only: the choices are not compared with each other "
    "here, and none of this says where longer training would end. lmrec trains the top block only, for the number of "
    "steps section 3 prints. LoRA ran at 10× the others' learning rate (`LORA_LR`), as adapters usually "
    "do; neither rate was tuned here."))
"""

FIT_MD = """## 3. Training `lmrec` and the ID-only SASRec by the same recipe

Both models follow one rule: train on the training part, stop when validation NDCG@10 (full ranking) has not
improved for 6 epochs, then **refit** a fresh model on training + validation for the best number of epochs — the
way the baselines below are fitted, on everything visible before the test item. What differs is the item table —
IDs only, or IDs plus the fine-tuned text vectors — and lmrec's one extra setting, chosen on validation: whether to
keep the second softmax over its text vectors alone (section 1). Its best validation score is the better of two runs,
so it reads a little optimistic; the test scores below are not, since the test users chose nothing.

The fitted lmrec is also saved in the **content-keyed cache** (`recbook.runs.cache.cached_fit`: the key hashes the model's
resolved settings, every interaction and item text, and the split), so notebook 14, which compresses what lmrec runs
per request, loads it instead of training it again when it asks for the same settings on the same data (this
notebook's defaults).
"""

FIT = """# NBVAL_IGNORE_OUTPUT
lm_overrides = {"lm_steps": LM_STEPS} if LM_STEPS else {}
start = time.perf_counter()
# fitted here (reuse=False: this chapter reads the fit's details) and left in the content-keyed cache for notebook 14
lmrec, lmrec_cache = cached_fit("lmrec", ds, split, profile, reuse=False, seed=SEED, backbone=BACKBONE,
                                trainable_layers=TRAINABLE_LAYERS, **lm_overrides)
lmrec_seconds = time.perf_counter() - start
start = time.perf_counter()
sasrec = create("sasrec", profile, seed=SEED, refit=True).fit(ds, split)
sasrec_seconds = time.perf_counter() - start
for name, model, seconds in (("lmrec", lmrec, lmrec_seconds), ("SASRec (IDs)", sasrec, sasrec_seconds)):
    r = model.train_result
    print(f"{name}: best validation NDCG@10 {r.best_metric:.4f} after {model.best_epochs} epochs (stopped by "
          f"{r.stop_reason or 'the epoch cap'}), refitted on train + valid; {seconds:.0f} s in all")
print(f"lmrec saved in the content-keyed cache: {lmrec_cache['folder']}")
print("lmrec's text_loss chosen on validation: " + ", ".join(f"weight {w:g} → NDCG@10 {v:.6f}" for w, v in lmrec.text_loss_validation.items())
      + f" → kept {lmrec.config.text_loss:g}")
fit = lmrec.encoder_fit
print(f"lmrec's encoder: {fit.trainable_parameters:,} trainable parameters, {lmrec.config.lm_steps} optimizer steps, {len(fit.losses)} logged losses "
      f"{fit.losses[0]:.3f} → {fit.losses[-1]:.3f}, {fit.seconds:.0f} s (cache of the frozen layers {fit.cache_seconds:.0f} s)")
"""

FIT_RENDER = """guard = [n for n, m in (("lmrec", lmrec), ("SASRec", sasrec)) if m.train_result.stop_reason == "time budget"]
with_text, without_text = lmrec.text_loss_validation[1.0], lmrec.text_loss_validation[0.0]
display(Markdown(
    f"On validation, the SASRec stage reached NDCG@10 {with_text:.6f} with the text-only softmax and {without_text:.6f} "
    f"without it, so lmrec kept **{'the text-only softmax' if lmrec.config.text_loss else 'no text-only softmax'}**"
    + (" — the two are level to within 0.0005" + (" (compare with how far a change of seed alone moves a score, section 5c)"
                                                   if N_SEEDS > 1 else "") + ": "
       + (f"the kept weight scored higher by {abs(with_text - without_text):.6f}, far too little to mean anything, so on "
          "the films people have watched the choice is effectively arbitrary." if with_text != without_text else
          "an exact tie, which the rule breaks by keeping weight 1.")
       + " What the text-only softmax is for — new films — this notebook does not test (section 7 keeps the "
       "weight chosen here). " if abs(with_text - without_text) < 5e-4 else
       " (one validation run each, without a confidence interval: the gap decides a setting, it is not evidence that "
       "one setting is better in general). ")
    + f"The encoder's contrastive loss went from {fit.losses[0]:.2f} to {fit.losses[-1]:.2f} "
    f"(a model that knows nothing scores about {fit.chance_loss:.2f} here: the log of the number of films each context is ranked "
    f"against — the distinct films among a batch's 128 contexts and targets, about {np.exp(fit.chance_loss):.0f}). "
    + ("Both models stopped by patience, not by the clock, so a slower machine trains for the same number of epochs, "
       "later (up to numerical differences between machines)."
       if not guard else f"**{' and '.join(guard)} stopped at the time-budget guard**, not by patience: on this machine the "
       "result depends on its speed — rerun with a larger `time_budget` to take the clock out.")))
"""

BASELINES_MD = """## 4. Baselines, tuned by the same rule

Popularity, item-kNN, EASE (a closed-form linear item-to-item model, strong on MovieLens) and MF-BPR. Item-kNN's
neighbours and shrinkage, EASE's ridge penalty and MF's dimension and weight decay are chosen on
**validation** with `recbook.models.tuning.tune` — each setting fitted on the visible interactions one step earlier
and judged on the validation items — then refitted on training + validation. The test items decide nothing. MF's grid is small because its fits are slow
(the cell prints each grid's time): its epochs and learning rate are fixed at 100 and 0.02, the best
of a wider search by the same rule on validation that `tools/mf_search.py` runs and prints (two rounds, 32 fits: a
24-setting grid over dimension, epochs, weight decay and learning rate, then 8 settings around its best) — a search
too slow to repeat in this notebook, so run it yourself to check the choice. (SASRec
and lmrec are tuned by the same data: their epochs are chosen by early stopping on the validation items.)
"""

BASELINES = """# NBVAL_IGNORE_OUTPUT
start = time.perf_counter()
MF_GRID = {"dim": [16, 32, 64], "weight_decay": [0.03, 0.1, 0.3], "epochs": [100], "lr": [0.02]}  # the neighbourhood a wider search picked (markdown above)
GRIDS = {"itemknn": {"neighbours": [20, 100, 400, 1600], "shrink": [0.0, 10.0]}, "ease": {"l2": [10.0, 25.0, 50.0, 200.0, 500.0, 2000.0]},
         "mf": MF_GRID}
tuned, tune_seconds = {}, {}
for name, grid in GRIDS.items():
    tick = time.perf_counter()
    tuned[name] = tune(name, ds, split, grid, profile=profile, seed=SEED, model_seed=SEED if name == "mf" else None)
    tune_seconds[name] = time.perf_counter() - tick
for name, t in tuned.items():
    print(f"{name}: validation NDCG@10 by setting ({len(t.table)} fits in {tune_seconds[name]:.0f} s)\\n"
          f"{t.table.round(4).to_string(index=False)}\\n→ chosen {t.best}")
models = {"popularity": create("pop").fit(ds, split),
          "item-kNN (tuned)": create("itemknn", **tuned["itemknn"].best).fit(ds, split),
          "EASE (tuned)": create("ease", **tuned["ease"].best).fit(ds, split),
          "MF-BPR (tuned)": create("mf", profile, seed=SEED, **tuned["mf"].best).fit(ds, split),
          "SASRec (IDs)": sasrec, "lmrec": lmrec}
print(f"baselines tuned and fitted in {time.perf_counter() - start:.0f} s")
"""

BASELINES_RENDER = """def tuned_sentence(name, t, grid):
    edges = [f"{k} = {v}" for k, v in t.best.items() if v in (min(grid[k]), max(grid[k])) and len(grid[k]) > 1
             and not (k == "shrink" and v == 0)]  # shrinkage cannot go below 0: that edge is the range's, not the grid's
    return (f"{name} chose {', '.join(f'{k} = {v}' for k, v in t.best.items())} (validation NDCG@10 {t.score:.4f})"
            + (f"; {' and '.join(edges)} is at the edge of the grid, so a wider grid might tune it further" if edges else ""))


LABELS = {"itemknn": "item-kNN", "ease": "EASE", "mf": "MF-BPR"}
display(Markdown("On the validation items: " + "; ".join(tuned_sentence(LABELS[n], tuned[n], GRIDS[n]) for n in tuned)
                 + ". The test users played no part in any of these choices."))
"""

RESULTS_MD = """## 5. Every model on every user

Full ranking over the films each user has not seen, the test item being their last one; NDCG@10 and HR@10 with
95% bootstrap intervals over users. Then `lmrec` against each model, paired on the same users.
"""

RESULTS = """# NBVAL_IGNORE_OUTPUT
per_user = {name: evaluate(m.scorer(test_set.history), test_set, "full", per_user=True)["per_user"] for name, m in models.items()}
print(ci_text_table(per_user, metrics=("NDCG@10", "HR@10"), n_boot=N_BOOT, seed=SEED).to_string())
paired = {name: paired_comparison(per_user["lmrec"]["NDCG@10"], per_user[name]["NDCG@10"], ("lmrec", name), n_boot=N_BOOT, seed=SEED)
          for name in models if name != "lmrec"}
for c in paired.values():
    print(c)
film_counts = test_set.history["item_id"].value_counts()
test_film_count = float(film_counts.reindex(test_set.heldout["item_id"]).fillna(0).median())
print(f"median training interactions of a test film: {test_film_count:.0f} (of any film: {film_counts.median():.0f})")
"""

RESULTS_RENDER = """def sentence(c):
    return f"{c.b}: {c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}] — " + (
        "lmrec is better" if c.diff.low > 0 else f"{c.b} is better" if c.diff.high < 0 else "inconclusive (the interval contains 0)")


vs_sasrec = paired["SASRec (IDs)"]
beaten = [n for n, c in paired.items() if c.diff.low > 0]
display(Markdown(
    f"**lmrec reaches full-ranking NDCG@10 {per_user['lmrec']['NDCG@10'].mean():.4f}** on {len(test_set.heldout)} users. "
    "Paired differences (lmrec − model, 95% CI): " + "; ".join(sentence(c) for c in paired.values()) + ". "
    + ("Against the ID-only SASRec trained by the same recipe the interval excludes zero over users (one seed per "
       "model" + ("; section 5c repeats the comparison seed by seed" if N_SEEDS > 1 else "") + "): here the text vectors "
       "add something the IDs did not have "
       "(whether their fine-tuning matters for these well-watched films is not what this comparison isolates; "
       "section 7 isolates it for new films)." if vs_sasrec.diff.low > 0 else
       f"Against the ID-only SASRec trained by the same recipe the interval contains zero: this run does **not** show that the "
       f"text vectors add to what SASRec learns from IDs on MovieLens: the interval allows a small loss as well as a gain of "
       f"{vs_sasrec.diff.high / per_user['SASRec (IDs)']['NDCG@10'].mean():.0%} of SASRec's NDCG@10. A likely reason, not "
       f"tested here: most test films are well watched (the median test film has {test_film_count:.0f} training "
       f"interactions), so their ID vectors already know much of what text could tell."
       if vs_sasrec.diff.high > 0 else "The ID-only SASRec is better here: the text path costs more than it brings on this catalogue.")
    + f" Models whose paired interval lmrec clears: {', '.join(beaten) if beaten else 'none'}."))
record("09 lmrec full NDCG@10", f"{per_user['lmrec']['NDCG@10'].mean():.4f}")
record("09 lmrec − SASRec (IDs), full NDCG@10", f"{vs_sasrec.diff.mean:+.4f} [{vs_sasrec.diff.low:+.4f}, {vs_sasrec.diff.high:+.4f}]: "
       f"{vs_sasrec.verdict}")
for name in ("EASE (tuned)", "item-kNN (tuned)", "MF-BPR (tuned)", "popularity"):
    c = paired[name]
    record(f"09 lmrec − {name}, full NDCG@10", f"{c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}]")
"""

FOREST_MD = """The same paired differences as a picture: one row per model, the dot at lmrec − model and the bar its 95% interval;
green where the whole interval lies above zero (lmrec better on these users), red below, grey where it contains zero.
"""

FOREST = """# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(6.5, 2.8))
names = list(paired)
for y, name in enumerate(names):
    c = paired[name]
    color = "tab:green" if c.diff.low > 0 else "tab:red" if c.diff.high < 0 else "tab:gray"
    ax.errorbar(c.diff.mean, y, xerr=[[c.diff.mean - c.diff.low], [c.diff.high - c.diff.mean]], fmt="o", color=color, capsize=4)
ax.axvline(0, color="black", lw=0.8)
ax.set(yticks=range(len(names)), yticklabels=names, xlabel="lmrec − model, full NDCG@10 (paired 95% CI)",
       title="lmrec against every model, on the same users")
fig.tight_layout()
fig.savefig(figure_path("09_paired_differences.png"), dpi=100)
plt.show()
"""

FUSION_MD = """## 5b. Fusion: does the language model add what a second SASRec would not?

Two recommenders can be combined without retraining: turn each one's scores over the catalogue into log-probabilities
(`log_softmax`: both are trained with a full-softmax cross-entropy, so their scores are logits) and add them — a
*product of experts* (`recbook.models.fusion.ScoreFusion`). Fusing lmrec with the ID-only SASRec asks whether the
language model's view of the films adds to the IDs'. But two models often beat one whatever they are, so the fair
control is **two ID-only SASRecs** (the second with another seed, same recipe) fused the same way: the language model
has earned its place only if SASRec + lmrec beats SASRec + SASRec, paired on the same users. A fused request runs both
networks (section 8 times it).
"""

FUSION = """# NBVAL_IGNORE_OUTPUT
from recbook.models.fusion import ScoreFusion

start = time.perf_counter()
sasrec_b = create("sasrec", profile, seed=SEED + 1, refit=True).fit(ds, split)
fusions = {"SASRec + lmrec": ScoreFusion([sasrec, lmrec]), "SASRec + 2nd SASRec": ScoreFusion([sasrec, sasrec_b])}
for name, m in fusions.items():
    per_user[name] = evaluate(m.scorer(test_set.history), test_set, "full", per_user=True)["per_user"]
per_user["2nd SASRec (seed 1)"] = evaluate(sasrec_b.scorer(test_set.history), test_set, "full", per_user=True)["per_user"]
print(f"a second ID-only SASRec (seed {SEED + 1}, same recipe) trained in {time.perf_counter() - start:.0f} s "
      f"(stopped by {sasrec_b.train_result.stop_reason or 'the epoch cap'})")
print(ci_text_table({n: per_user[n] for n in ("SASRec (IDs)", "lmrec", *fusions)}, metrics=("NDCG@10", "HR@10"),
                    n_boot=N_BOOT, seed=SEED).to_string())


def pair(a, b):
    return paired_comparison(per_user[a]["NDCG@10"], per_user[b]["NDCG@10"], (a, b), n_boot=N_BOOT, seed=SEED)


fusion_paired = {"lm_vs_sasrec": pair("SASRec + lmrec", "SASRec (IDs)"),
                 "lm_vs_two_sasrecs": pair("SASRec + lmrec", "SASRec + 2nd SASRec"),
                 "two_sasrecs_vs_sasrec": pair("SASRec + 2nd SASRec", "SASRec (IDs)"),
                 "lm_vs_lmrec": pair("SASRec + lmrec", "lmrec"),
                 "seed_1_vs_seed_0": pair("2nd SASRec (seed 1)", "SASRec (IDs)")}
for c in fusion_paired.values():
    print(c)
"""

FUSION_RENDER = """def interval(c):
    return f"{c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}]"


lm_s, lm_2, two_s = (fusion_paired[k] for k in ("lm_vs_sasrec", "lm_vs_two_sasrecs", "two_sasrecs_vs_sasrec"))
display(Markdown(
    f"Fused with lmrec, SASRec reaches full NDCG@10 {lm_s.mean_a:.4f} against {lm_s.mean_b:.4f} alone: "
    f"{interval(lm_s)} — " + ("**the recommender that uses the fine-tuned language model beats the ID-only SASRec alone**, paired "
                             f"over all {len(test_set.heldout)} users. " if lm_s.diff.low > 0 else f"{lm_s.verdict}. ")
    + f"Fused with a second ID-only SASRec instead, it reaches {two_s.mean_a:.4f} ({interval(two_s)} against one SASRec, "
    f"{two_s.verdict}). The control decides: SASRec + lmrec − SASRec + SASRec = {interval(lm_2)} — "
    + ("the language model adds something a second ID model of the same recipe does not: the gain is not just "
       "ensembling." + (" The gain is lmrec's own: the fusion shows no measurable difference from lmrec alone (below)."
                        if fusion_paired["lm_vs_lmrec"].diff.low <= 0 <= fusion_paired["lm_vs_lmrec"].diff.high else "")
       if lm_2.diff.low > 0 else
       "the interval contains zero, so this run does not separate what the language model adds from what any second "
       "model adds." if lm_2.diff.high > 0 else "a second SASRec helps more than lmrec does here.")
    + f" Against lmrec alone the fusion is {interval(fusion_paired['lm_vs_lmrec'])} ({fusion_paired['lm_vs_lmrec'].verdict}): "
    + ("it earns its second network pass per request (section 8)." if fusion_paired["lm_vs_lmrec"].diff.low > 0 else
       "this run does not show that the fusion beats lmrec on its own, which costs one pass (section 8).")))
seeds = fusion_paired["seed_1_vs_seed_0"]
display(Markdown(
    f"**Two seeds of one recipe.** The same SASRec recipe with another seed reaches full NDCG@10 {seeds.mean_a:.4f} against "
    f"{seeds.mean_b:.4f}: seed 1 − seed 0 = {interval(seeds)} ({seeds.verdict}). Two models that differ only by their "
    "seed are two draws of one recipe; a paired difference between two models cancels the users' share of the uncertainty, not the seeds' — which is "
    "why the fusion above is judged against a second seed of SASRec, and why section 5c fits every trained model at "
    "several seeds."))
record("09 SASRec + lmrec fused − SASRec (IDs), full NDCG@10", f"{interval(lm_s)}: {lm_s.verdict}")
record("09 SASRec + lmrec fused − two SASRecs fused, full NDCG@10", f"{interval(lm_2)}: {lm_2.verdict}")
"""

SEEDS_MD = """## 5c. Seeds: a property of the recipe, or of seed 0?

Every verdict so far rests on one trained model per recipe. Training is random — the initial weights, the order of
the batches, dropout — so another seed gives another model, and a gap between two models can come from their seeds
rather than their recipes. Here each trained model (lmrec, SASRec and MF-BPR) is fitted at `N_SEEDS` seeds by the same recipe (lmrec keeps
the `text_loss` its first seed chose, so the extra seeds vary training's randomness, not its one choice) and lmrec is
compared with each, **seed by seed**, on the same users (`recbook.evaluation.stats.seed_study`). Two uncertainties of a
*difference* between two models are set side by side, both as standard deviations: how far the difference moves
between seeds, and how far it moves between sets of users within one seed (the paired bootstrap's standard error).
A verdict belongs to the recipe only if it holds at every seed. The
pooled row averages each user's score over the seeds before pairing; its interval still counts only the users'
uncertainty (a handful of seeds is too few to put an interval on the seeds' own), so read it beside the seeds' spread.
"""

SEEDS = """# NBVAL_IGNORE_OUTPUT
from recbook.evaluation.stats import seed_study

start = time.perf_counter()
seed_list = [SEED + k for k in range(N_SEEDS)]
trained = {"lmrec": {SEED: lmrec}, "SASRec (IDs)": {SEED: sasrec, SEED + 1: sasrec_b}, "MF-BPR (tuned)": {SEED: models["MF-BPR (tuned)"]}}
recipes = {"lmrec": lambda s: create("lmrec", profile, seed=s, backbone=BACKBONE, trainable_layers=TRAINABLE_LAYERS,
                                     text_loss=lmrec.config.text_loss, **lm_overrides),
           "SASRec (IDs)": lambda s: create("sasrec", profile, seed=s, refit=True),
           "MF-BPR (tuned)": lambda s: create("mf", profile, seed=s, **tuned["mf"].best)}
extra_fits = 0
for name, make in recipes.items():
    for s in seed_list:
        if s not in trained[name]:
            trained[name][s] = make(s).fit(ds, split)
            extra_fits += 1
            print(f"{name}, seed {s}: trained in {trained[name][s].train_seconds:.0f} s")
seed_users = {name: {s: evaluate(by_seed[s].scorer(test_set.history), test_set, "full", per_user=True)["per_user"]["NDCG@10"]
                     for s in seed_list} for name, by_seed in trained.items()}
studies = {other: seed_study(seed_users["lmrec"], seed_users[other], ("lmrec", other), n_boot=N_BOOT, seed=SEED)
           for other in ("SASRec (IDs)", "MF-BPR (tuned)")}
user_half = {name: mean_ci(by_seed[SEED], n_boot=N_BOOT, seed=SEED).half_width for name, by_seed in seed_users.items()}
spread = pd.DataFrame({name: {**{f"seed {s}": round(v.mean(), 4) for s, v in by_seed.items()},
                              "SD over seeds": round(float(np.std([v.mean() for v in by_seed.values()], ddof=1)), 4) if N_SEEDS > 1 else np.nan,
                              f"95% interval half-width over users (seed {SEED})": round(user_half[name], 4)} for name, by_seed in seed_users.items()}).T
print(spread.to_string())
for other, st in studies.items():
    print(f"\\nlmrec − {other}, seed by seed:\\n{st.table().to_string()}\\npooled over the seeds: {st.pooled}")
print(f"\\n{extra_fits} extra fits in {time.perf_counter() - start:.0f} s")
"""

SEEDS_RENDER = """def span(c):
    return f"{c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}]"


def seed_sentence(other, st):
    per_seed = "; ".join(f"seed {s} {span(c)}" for s, c in st.per_seed.items())
    ratio = st.diff_sd / st.diff_se
    return (f"lmrec − {other} at each seed: {per_seed}: {st.every_seed_text}. Between seeds the difference moves by a "
            f"standard deviation of {st.diff_sd:.4f}; within one seed, the users' standard error of the paired "
            f"difference is {st.diff_se:.4f}"
            + (" — the seeds move it at least twice as much as the users do, so one seed per model would not have been "
               "enough to compare these recipes" if ratio > 2 else
               " — the users move it at least twice as much as the seeds do here" if ratio < 0.5 else
               f" — the two are of the same order here (a ratio of {ratio:.1f}, which {len(st.seeds)} seeds cannot pin down)")
            + f". Pooled over the seeds (each user's score averaged first): {span(st.pooled)}, {st.pooled.verdict} "
            "(an interval over users only, the seeds held fixed).")


if N_SEEDS > 1:
    sd = {name: float(np.std([v.mean() for v in by_seed.values()], ddof=1)) for name, by_seed in seed_users.items()}
    display(Markdown(
        f"**Over {N_SEEDS} seeds**, each model's full NDCG@10 moves with the seed by a standard deviation of "
        + ", ".join(f"{sd[n]:.4f} ({n})" for n in seed_users)
        + f" — standard deviations from {N_SEEDS} values each, so rough: the true one could be about half or several "
        "times as large. What decides a comparison is how the *difference* between two models moves, set against the "
        "paired interval's own noise. " + " ".join(seed_sentence(o, st) for o, st in studies.items())))
    sas = studies["SASRec (IDs)"]
    record("09 lmrec − SASRec (IDs), full NDCG@10, seed by seed",
           "; ".join(f"seed {s} {span(c)}" for s, c in sas.per_seed.items()) + f"; pooled {span(sas.pooled)}: {sas.every_seed_text}")
    record("09 seed SD of full NDCG@10 (lmrec / SASRec / MF)", " / ".join(f"{sd[n]:.4f}" for n in seed_users))
else:
    display(Markdown("`N_SEEDS = 1`: one seed per model, so this section measures nothing about the seeds; set it to 3 "
                     "to train the extra models."))
"""

SEEDS_FIG_MD = """Each model's full-ranking NDCG@10 at every seed (blue dots), over the grey bar of the first seed's 95% interval
over users: dots far apart against the bar would mean the seed matters as much as the users; this is a picture of
single models, while the paired differences above are what decide a comparison.
"""

SEEDS_FIG = """# NBVAL_IGNORE_OUTPUT
fig, ax = plt.subplots(figsize=(8, 2.4))
for y, (name, by_seed) in enumerate(seed_users.items()):
    first = mean_ci(by_seed[SEED], n_boot=N_BOOT, seed=SEED)
    ax.errorbar(first.mean, y, xerr=[[first.mean - first.low], [first.high - first.mean]], fmt="none", color="lightgray",
                capsize=4, lw=6, label="95% interval over users (first seed)" if y == 0 else None)
    ax.scatter([v.mean() for v in by_seed.values()], [y] * len(by_seed), color="tab:blue", zorder=3,
               label="one trained model per seed" if y == 0 else None)
ax.set_yticks(range(len(seed_users)), list(seed_users))
ax.set_xlabel("full-ranking NDCG@10, all users")
ax.set_title("What a seed moves, against what the users move")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
fig.tight_layout()
fig.savefig(figure_path("09_seeds.png"), dpi=120, bbox_inches="tight")
plt.show()
"""

TEXT_MD = """## 6. What the text alone knows

The fine-tuned encoder is also a recommender by itself: score each film by its cosine to the mean vector of the
user's five latest films (the *content-only* baseline — no IDs, no SASRec).
"""

TEXT = """# NBVAL_IGNORE_OUTPUT
# content_scorer: defined in section 2
per_user["text, fine-tuned encoder"] = evaluate(content_scorer(fit.vectors, test_set.history), test_set, "full", per_user=True)["per_user"]
print(ci_text_table({n: per_user[n] for n in ("text, fine-tuned encoder", "popularity", "lmrec")}, metrics=("NDCG@10", "HR@10"),
                    n_boot=N_BOOT, seed=SEED).to_string())
"""

TEXT_RENDER = """t_lm = paired_comparison(per_user["text, fine-tuned encoder"]["NDCG@10"], per_user["lmrec"]["NDCG@10"], ("text", "lmrec"),
                         n_boot=N_BOOT, seed=SEED)
t_pop = paired_comparison(per_user["text, fine-tuned encoder"]["NDCG@10"], per_user["popularity"]["NDCG@10"], ("text", "popularity"),
                          n_boot=N_BOOT, seed=SEED)
display(Markdown(
    f"The fine-tuned text model alone reaches full NDCG@10 {per_user['text, fine-tuned encoder']['NDCG@10'].mean():.4f}; against "
    f"popularity it is {t_pop.diff.mean:+.4f} [{t_pop.diff.low:+.4f}, {t_pop.diff.high:+.4f}] ({t_pop.verdict}). Against "
    f"lmrec ({per_user['lmrec']['NDCG@10'].mean():.4f}), paired, text − lmrec = {t_lm.diff.mean:+.4f} [{t_lm.diff.low:+.4f}, "
    f"{t_lm.diff.high:+.4f}] ({t_lm.verdict})"
    + (": similarity of texts to the recent films predicts the next film less well than lmrec, which also learns an ID "
       "vector per film and the order of the history — which is why the text vectors feed SASRec's item table instead of "
       "replacing it." if t_lm.diff.high < 0 else ": this run does not show lmrec ahead of its own text vectors used alone.")
    + " Exercise 3 runs the same model with the frozen encoder's vectors."))
"""

COLD_MD = """## 7. New films: where the text has to carry everything

On the leave-last-out split most test films are well watched (section 5 printed the median), so an ID vector knows a
lot about them. The case the language model is for is a film nobody has watched yet. The cold-start split of
notebook `05` holds the newest `COLD_FRACTION` of films out of training entirely; each user's first pick of one of
them is a test item, scored from that user's earlier (warm) history. We train two models on the warm part — `lmrec`,
and the same hybrid SASRec with the **frozen** encoder's vectors (notebook `05`'s model, trained here by lmrec's
recipe, with the `text_loss` that section 3 chose on validation, so that the encoder's fine-tuning is the main difference: the frozen vectors read each text cut at 64 tokens,
lmrec's encoder at 32, so a text longer than 32 tokens would differ by that too) — and rank each cold pick
against films the user never touched (how many: printed below), drawn from the whole catalogue and, harder, from the
other new films only.
(No refit here: both models are compared as early stopping left them.)
"""

COLD = """# NBVAL_IGNORE_OUTPUT
from recbook.data.splits import cold_item_split
from recbook.evaluation.protocol import make_cold_eval_set

cold = cold_item_split(ds.interactions, COLD_FRACTION)
start = time.perf_counter()
same_recipe = {"id_dropout": lmrec.config.id_dropout, "text_loss": lmrec.config.text_loss}  # lmrec's way of training the text path
cold_models = {"hybrid, frozen text": create("sasrec", profile, seed=SEED, item_features="hybrid", **same_recipe).fit(ds, cold.warm()),
               "lmrec": create("lmrec", profile, seed=SEED, backbone=BACKBONE, trainable_layers=TRAINABLE_LAYERS, refit=False,
                               text_loss=lmrec.config.text_loss, **lm_overrides).fit(ds, cold.warm())}
print(f"{len(cold.cold_items)} cold films, {len(cold.test_cold)} users with a cold pick, each ranked against "
      f"{profile.eval_negatives} sampled negatives; both models trained in {time.perf_counter() - start:.0f} s")
cold_users = {}
for among in ("catalogue", "cold"):
    es = make_cold_eval_set(ds, cold, profile.eval_negatives, seed=SEED, negatives_from=among)
    cold_users[among] = {n: evaluate(m.scorer(cold.cold_history), es, "sampled", per_user=True)["per_user"] for n, m in cold_models.items()}
    print(f"\\nnegatives from the {among}: {es.description}")
    print(ci_text_table(cold_users[among], metrics=("AUC", "NDCG@10"), n_boot=N_BOOT, seed=SEED).to_string())
cold_paired = {among: paired_comparison(cold_users[among]["lmrec"]["AUC"], cold_users[among]["hybrid, frozen text"]["AUC"],
                                        ("lmrec", "frozen text"), n_boot=N_BOOT, seed=SEED) for among in cold_users}
"""

COLD_RENDER = """def auc_sentence(among):
    c = cold_paired[among]
    return (f"among negatives from {'the whole catalogue' if among == 'catalogue' else 'the other new (cold) films'}, cold AUC {c.mean_a:.3f} against {c.mean_b:.3f}: "
            f"{c.diff.mean:+.3f} [{c.diff.low:+.3f}, {c.diff.high:+.3f}] — {c.verdict}")


display(Markdown(
    "On films never seen in training, lmrec against the frozen-text hybrid (paired over the same users): "
    + "; ".join(auc_sentence(a) for a in cold_paired) + ". "
    + ("Here the fine-tuning pays on both pools: the encoder learned which films are watched together, where the "
       "frozen one only knows which texts are alike."
       if all(c.diff.low > 0 for c in cold_paired.values()) else
       "The intervals do not show a gain on every negative pool: what the fine-tuning adds for new films is not resolved "
       "by this run.")
    + " The first pool mixes in warm films the models were trained on; the second asks only *which* new film — where a "
    "model that scored every new film alike would sit at exactly 0.5. Only AUC is tested here (the NDCG@10 columns are "
    "shown, not paired)."))
for among, c in cold_paired.items():
    record(f"09 cold AUC (negatives: {among}) lmrec − frozen-text hybrid", f"{c.diff.mean:+.3f} [{c.diff.low:+.3f}, {c.diff.high:+.3f}]: {c.verdict}")
    record(f"09 cold AUC (negatives: {among}) lmrec / frozen-text hybrid", f"{c.mean_a:.3f} / {c.mean_b:.3f}")
"""

COST_REQ_MD = """## 8. What a request costs

A request to `lmrec` is what a request to SASRec is: one pass of the small transformer over the history and one
product with the item table — the language model ran when the items entered the catalogue. The cell times one
request (a single user's history, every film scored) for SASRec, lmrec and their fusion, interleaved, in CPU
milliseconds of this process.
"""

COST_REQ = """# NBVAL_IGNORE_OUTPUT
from recbook.models.base import Histories

histories = Histories.from_interactions(test_set.history)
rng = np.random.default_rng(SEED)
timed = {"SASRec (IDs)": sasrec, "lmrec": lmrec, "SASRec + lmrec": fusions["SASRec + lmrec"]}
cpu_ms = {name: [] for name in timed}
threads = torch.get_num_threads()
torch.set_num_threads(1)
for i, r in enumerate(rng.choice(len(histories), 200)):
    one = histories.subset([r])
    for name in (list(cpu_ms) if i % 2 else list(cpu_ms)[::-1]):  # alternate which model goes first
        start = time.process_time()
        timed[name].score_all(one)
        cpu_ms[name].append((time.process_time() - start) * 1000)
torch.set_num_threads(threads)
ms = {n: mean_ci(np.asarray(v), n_boot=N_BOOT, seed=SEED) for n, v in cpu_ms.items()}
for n, e in ms.items():
    print(f"{n}: {e.mean:.2f} ms CPU per request [{e.low:.2f}, {e.high:.2f}] (one thread, 200 requests)")
ratio = ms["lmrec"].mean / ms["SASRec (IDs)"].mean
cpu_pair = paired_comparison(np.asarray(cpu_ms["lmrec"]), np.asarray(cpu_ms["SASRec (IDs)"]), ("lmrec", "SASRec (IDs)"),
                             n_boot=N_BOOT, seed=SEED)  # the same 200 requests, interleaved: paired by request
fused_ratio = ms["SASRec + lmrec"].mean / ms["SASRec (IDs)"].mean
display(Markdown(
    f"One request costs {ms['lmrec'].mean:.2f} ms [{ms['lmrec'].low:.2f}, {ms['lmrec'].high:.2f}] of CPU with lmrec and "
    f"{ms['SASRec (IDs)'].mean:.2f} ms [{ms['SASRec (IDs)'].low:.2f}, {ms['SASRec (IDs)'].high:.2f}] with the ID-only SASRec "
    f"(one thread, {len(cpu_ms['lmrec'])} requests each, interleaved in alternating order): a ratio of {ratio:.2f}. "
    + ((f"Paired request by request, lmrec − SASRec = {cpu_pair.diff.mean:+.3f} ms [{cpu_pair.diff.low:+.3f}, "
        f"{cpu_pair.diff.high:+.3f}]: " + ("no measurable difference. " if not cpu_pair.significant else
        f"lmrec is {abs(1 - ratio):.0%} {'cheaper' if ratio < 1 else 'dearer'} here"
        + (", a small gap for the same architecture. " if abs(1 - ratio) < 0.1 else ". ")))
       + "The text vectors enter the item table once (cached at inference): the language model adds no pass per request."
       if ratio < 1.25 else
       "lmrec costs noticeably more per request here, although its item table is cached at inference: the difference "
       "is the work this measurement does not separate (e.g. a wider table) — measure it through the service before "
       "trusting it.")
    + f" The fusion of section 5b runs both networks: {ms['SASRec + lmrec'].mean:.2f} ms "
    f"[{ms['SASRec + lmrec'].low:.2f}, {ms['SASRec + lmrec'].high:.2f}], {fused_ratio:.1f}× one SASRec"
    + (" — a price section 5b shows paid off against lmrec alone." if fusion_paired["lm_vs_lmrec"].diff.low > 0 else
       ", while section 5b did not show it ahead of lmrec alone, which costs one pass.")
    + " Notebook `17_serving` measures requests through the real service."))
"""

EXERCISES_MD = """## Exercises

**Exercise 1.** The symptom: an ID-only SASRec gives a film it never trained on a zero vector, so its score is
exactly 0 — above every trained film whose score is negative, which after a softmax training is most of them.
Write `floor_untrained(scores, trained)`: given a `users × items` score matrix and a boolean mask of the items that
were trained on, return a copy where every untrained item scores 1 below the lowest trained item of its row (what
`recbook.models.sasrec.SASRec.score_all` does).
"""

EX1 = """from recbook_course.exercises import check


def floor_untrained(scores, trained):
    ### BEGIN SOLUTION
    out = np.array(scores, dtype=float, copy=True)
    trained = np.asarray(trained, dtype=bool)
    out[:, ~trained] = out[:, trained].min(axis=1, keepdims=True) - 1.0
    return out
    ### END SOLUTION


assert check("09.untrained_floor", floor_untrained)
"""

EX2_MD = """**Exercise 2.** Write `content_scores(vectors, history, n_recent)`: the content-only baseline of section 6 for
one user — `vectors` holds one L2-normalised row per catalogue item, `history` the user's catalogue rows oldest first;
return every item's cosine to the normalised mean of the `n_recent` latest history rows.
"""

EX2 = """def content_scores(vectors, history, n_recent):
    ### BEGIN SOLUTION
    mean = np.asarray(vectors)[list(history)[-n_recent:]].mean(axis=0)
    return np.asarray(vectors) @ (mean / np.linalg.norm(mean))
    ### END SOLUTION


assert check("09.content_scores", content_scores)
"""

EX3_MD = """**Exercise 3 (an experiment).** What did the fine-tuning teach the encoder, on its own? Run the content-only model
of section 6 with the **frozen** encoder's vectors (`fit.frozen_vectors`) instead of the fine-tuned ones, score it
under full ranking on the same test users, and pass the check the dict
`{"scorer": <your scorer>, "ndcg_full": <its full-ranking NDCG@10>, "significant": <does its paired interval against the
fine-tuned text model exclude zero?>}` (the cell adds the evaluation set and the reference when it calls the check). Before you run it: which direction do you expect — and
does an interval that contains zero mean "the fine-tuning taught nothing"?
"""

EX3 = """# NBVAL_IGNORE_OUTPUT
### BEGIN SOLUTION
variant_scorer = content_scorer(fit.frozen_vectors, test_set.history)
variant = evaluate(variant_scorer, test_set, "full", per_user=True)
frozen_vs_tuned = paired_comparison(variant["per_user"]["NDCG@10"], per_user["text, fine-tuned encoder"]["NDCG@10"],
                                    ("frozen text", "fine-tuned text"), n_boot=N_BOOT, seed=SEED)
print(frozen_vs_tuned)
answer = {"scorer": variant_scorer, "ndcg_full": variant["NDCG@10"], "significant": frozen_vs_tuned.significant}
### END SOLUTION
assert check("09.freezing_variant", {**answer, "eval_set": test_set, "reference": per_user["text, fine-tuned encoder"]["NDCG@10"]})
tuned_ndcg = per_user["text, fine-tuned encoder"]["NDCG@10"].mean()
display(Markdown(f"With the frozen encoder's vectors the content-only model reaches full NDCG@10 {answer['ndcg_full']:.4f} against "
                 f"{tuned_ndcg:.4f} fine-tuned; " + ("the paired interval excludes zero: the fine-tuning changed what the text "
                 "vectors know about who watches what." if answer["significant"] else "the paired interval contains zero: this "
                 "run cannot tell the two apart — which is not the same as the fine-tuning teaching nothing.")))
"""

SUMMARY = """## Summary

- A language model can sit in a recommender in three places; in the item representation its cost is paid once per
  item; section 8 measures what a request then costs against SASRec.
- Section 2 measures what each freezing choice costs per step (training only the top layer reads cached lower layers)
  and what its first steps buy, each against the frozen encoder.
- Whether lmrec beats the ID-only SASRec, and which tuned baselines it clears, was decided by the paired intervals of
  section 5 on every user; the sentences there are this run's result, including when the interval contains zero.
- Section 5c fits each trained model at `N_SEEDS` seeds and pairs them seed by seed: a verdict is the recipe's only
  if it holds at every seed, and how far the seeds move a difference is set beside the users' noise.
- Fusion (section 5b) asks the fair question — does the language model add what a *second ID model* would not? —
  by fusing lmrec with SASRec and comparing with two fused SASRecs, paired; its verdict is this run's.
- New films are where text has to carry everything: section 7 compares the fine-tuned encoder with the frozen one on
  films never seen in training, paired over the same users.
- An item the model never trained on must not outrank trained ones by accident (exercise 1): an ID-only SASRec's
  `score_all` (the `Recommender` contract of `recbook.models.base`) floors them.

**Next:** `10_peft` fine-tunes a BERT cross-encoder with LoRA, AdaLoRA, IA3, prefix tuning and adapters —
parameter-efficient alternatives to choosing which layers to train.
"""


SUMMARY_RENDER = """baselines = ("popularity", "item-kNN (tuned)", "EASE (tuned)", "MF-BPR (tuned)")
strongest = max(baselines, key=lambda n: per_user[n]["NDCG@10"].mean())


def verdict(c, a, b):
    return f"{a} − {b} = {c.diff.mean:+.4f} [{c.diff.low:+.4f}, {c.diff.high:+.4f}] ({'better' if c.diff.low > 0 else 'worse' if c.diff.high < 0 else 'inconclusive'})"


display(Markdown(
    "**This run, in one paragraph.** Full NDCG@10 on all users: " + verdict(paired["SASRec (IDs)"], "lmrec", "SASRec (IDs)") + "; "
    + verdict(paired[strongest], "lmrec", f"{strongest}, the strongest baseline here")
    + (f"; over {N_SEEDS} seeds, {studies['SASRec (IDs)'].every_seed_text}" if N_SEEDS > 1 else "") + "; fused with SASRec, "
    + verdict(fusion_paired["lm_vs_two_sasrecs"], "SASRec + lmrec", "two SASRecs") + ". On new films, cold AUC against the "
    "frozen-text hybrid: " + "; ".join(f"among {'catalogue' if a == 'catalogue' else 'other new films as'} negatives {c.diff.mean:+.3f} [{c.diff.low:+.3f}, {c.diff.high:+.3f}]"
                                       for a, c in cold_paired.items())
    + f". A request costs {ms['lmrec'].mean:.2f} ms of CPU with lmrec, {ms['SASRec (IDs)'].mean:.2f} ms with SASRec."))
"""

TOTAL = """# NBVAL_IGNORE_OUTPUT
print(f"notebook time: {time.perf_counter() - notebook_start:.0f} s")
"""


def cells():
    v4 = nbformat.v4
    md, code = v4.new_markdown_cell, v4.new_code_cell
    params = code(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    return [md(TITLE), code(SETUP), params, md(OBJECTIVES), code(IMPORTS), md(WHERE_MD), md(COST_MD), code(COST), code(COST_RENDER),
            md(FIT_MD), code(FIT), code(FIT_RENDER), md(BASELINES_MD), code(BASELINES), code(BASELINES_RENDER), md(RESULTS_MD), code(RESULTS),
            code(RESULTS_RENDER), md(FOREST_MD), code(FOREST), md(FUSION_MD), code(FUSION), code(FUSION_RENDER), md(SEEDS_MD), code(SEEDS), code(SEEDS_RENDER), md(SEEDS_FIG_MD), code(SEEDS_FIG), md(TEXT_MD), code(TEXT), code(TEXT_RENDER), md(COLD_MD), code(COLD),
            code(COLD_RENDER), md(COST_REQ_MD), code(COST_REQ),
            md(EXERCISES_MD), code(EX1), md(EX2_MD), code(EX2), md(EX3_MD), code(EX3), md(SUMMARY), code(SUMMARY_RENDER), code(TOTAL)]


def main() -> None:
    nb = nbformat.v4.new_notebook(cells=cells())
    nb.metadata.update({"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                        "language_info": {"name": "python"}})
    nbformat.write(nb, ROOT / "notebooks" / f"{NAME}.ipynb")


if __name__ == "__main__":
    main()
