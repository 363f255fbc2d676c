"""Command line: train and evaluate any recommender of the course.

    python -m recbook train --data synthetic --model cross-encoder --profile quick --out runs/ce
    python -m recbook train --data movielens-100k --model cross-encoder --peft lora --out runs/ce-lora
    python -m recbook evaluate --checkpoint runs/ce --data synthetic
    python -m recbook bench --checkpoint runs/ce --variants fp32,int8,onnx-int8,prune50-int8 --out runs/bench
    python -m recbook bench --target catalogue --data movielens-100k --variants fp32,int8,onnx-int8 --out runs/bench-cat

``train`` writes ``OUT/metrics.json`` (protocol, HR@10, NDCG@10, MRR, AUC, train time, environment)
and the model under ``OUT/checkpoint/`` (safetensors) with ``run.json``: the data, seed and the
*resolved* profile (every field), plus the catalogue trained on (item count and a hash of the sorted
item ids). ``evaluate`` re-scores a saved model under the same protocol and profile on any machine
(``--profile`` overrides, with a notice) and refuses data whose catalogue differs. ``bench`` measures compressed variants of a cross-encoder checkpoint
(:mod:`recbook.bench`) or, with ``--target catalogue``, of the BERT that embeds the catalogue, judged by a text SASRec on
every user with paired CIs (:mod:`recbook.compress.catalogue`), and writes ``bench.csv``, ``bench.md`` and a Pareto figure. ``--data`` is ``synthetic``, ``movielens-100k`` or a folder in the
``recbook.data.load_folder`` format. Bad arguments print a clear message and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from .compress.variants import VARIANT_KINDS
from .pipeline import BERT_MODELS, MODEL_NAMES, SEQUENTIAL_MODELS

DATA_HELP = "synthetic | movielens-100k | PATH (a folder with interactions.csv and items.csv)"


class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


SPLITS = ("leave-last-out", "cold-items")


def _load_data(source: str, profile, seed: int, all_users: bool = False):
    from .data import DataError, load_dataset

    if source not in ("synthetic", "movielens-100k") and not Path(source).is_dir():
        raise UsageError(f"--data {source!r}: expected {DATA_HELP}")
    try:
        if source == "synthetic":
            ds = load_dataset("synthetic", seed=seed, n_users=profile.n_users, n_items=profile.n_items)
        else:
            ds = load_dataset(source)
    except (DataError, FileNotFoundError) as exc:
        raise UsageError(f"--data {source!r}: {exc}") from None
    if source == "movielens-100k" and not all_users:  # the profile's subset, the same for every model so results compare
        ds = ds.subset_users(profile.movielens_users, seed=seed)
    return ds


def prepare_data(source: str, profile, seed: int = 0, split: str = "leave-last-out", cold_fraction: float = 0.1,
                 all_users: bool = False):
    """``(dataset, split)`` for a data source as every command builds it: the profile's subset of MovieLens users
    (all of them with ``all_users``), then leave-last-out — or, with ``split="cold-items"``, the item cold-start
    split (:func:`recbook.data.splits.cold_item_split`, a ``ColdStartSplit``)."""
    from .data import leave_last_out
    from .data.splits import cold_item_split

    if split not in SPLITS:
        raise UsageError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
    ds = _load_data(source, profile, seed, all_users)
    if split == "cold-items":
        if not 0 < cold_fraction < 1:
            raise UsageError(f"--cold-fraction must be between 0 and 1 (e.g. 0.1), got {cold_fraction}")
        return ds, cold_item_split(ds.interactions, cold_fraction)
    return ds, leave_last_out(ds.interactions, drop_short_users=True)


def _checkpoint_folder(path: str) -> tuple[Path, dict]:
    """The checkpoint folder of a train run (its ``--out`` or ``--out/checkpoint``) and its ``run.json``."""
    folder = Path(path)
    folder = folder / "checkpoint" if (folder / "checkpoint" / "run.json").is_file() else folder
    if not (folder / "run.json").is_file():
        raise UsageError(f"--checkpoint {path!r}: no run.json found; pass the --out folder of 'recbook train'")
    return folder, json.loads((folder / "run.json").read_text())


def catalogue_fingerprint(dataset) -> dict:
    """What ``run.json`` records about the catalogue a model was trained on: item count and a hash of the sorted ids."""
    ids = sorted(str(i) for i in dataset.item_ids)
    return {"n_items": len(ids), "item_ids_sha256": hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()}


def _check_catalogue(run: dict, dataset, source: str) -> None:
    """Refuse to score a checkpoint on data whose catalogue is not the one it was trained on."""
    trained = run.get("catalogue")
    if trained is None:  # a run.json written before catalogues were recorded
        return
    here = catalogue_fingerprint(dataset)
    if here != trained:
        raise UsageError(
            f"--data {source!r} has a different catalogue ({here['n_items']} items, ids sha256 {here['item_ids_sha256'][:12]}) "
            f"from the one the checkpoint was trained on (--data {run['data']!r}: {trained['n_items']} items, ids sha256 "
            f"{trained['item_ids_sha256'][:12]}); evaluate it on the data it was trained on"
        )


def _run_profile(run: dict, override: str | None):
    """The profile a command re-uses: the one stored in ``run.json``, unless ``--profile`` overrides it (with a notice)."""
    from .device import PROFILES, Profile, get_profile

    stored = run.get("profile")
    if override is not None:
        if stored is not None:
            name = stored.get("name") if isinstance(stored, dict) else stored
            print(f"note: --profile {override} overrides the profile the checkpoint was trained with ({name}, stored in run.json)",
                  file=sys.stderr)
        return get_profile(override)
    if not isinstance(stored, dict):  # a run.json written before the resolved profile was stored: its name (or the default)
        return get_profile(stored)
    fields = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(stored) - fields)
    if unknown:
        raise UsageError(f"run.json's profile has field(s) {unknown} this version of recbook does not know; pass --profile")
    base = PROFILES.get(stored.get("name"))
    try:
        return dataclasses.replace(base, **stored) if base is not None else Profile(**stored)
    except TypeError as exc:
        raise UsageError(f"run.json's profile is incomplete ({exc}); pass --profile") from None


def _protocols(model: str) -> tuple[str, ...]:
    """Full ranking for every model except the cross-encoder (one BERT pass per catalogue item is too slow)."""
    return ("sampled",) if model == "cross-encoder" else ("sampled", "full")


def evaluate_split(fitted_scorer, dataset, split, profile, bert: bool, seed: int, protocols, eval_users=None, eval_set=None) -> dict:
    """The metrics every command reports: test users of ``split`` (or a given ``eval_set``) under ``protocols``.

    Sampled-protocol metrics at the top level, full ranking under ``"full_ranking"``; each carries ``"ci95"``:
    ``{metric: [low, high]}``, a 95% bootstrap interval over users (:mod:`recbook.stats`).
    """
    from .evaluate import evaluate, make_eval_set
    from .stats import mean_ci

    if eval_set is None:
        n_users = eval_users if eval_users is not None else (profile.bert_eval_users if bert else None)
        eval_set = make_eval_set(dataset, split, "test", profile.eval_negatives, n_users=n_users, seed=seed)
    results = {}
    for p in protocols:
        res = evaluate(fitted_scorer, eval_set, p, per_user=True)
        per_user = res.pop("per_user")
        res["ci95"] = {m: [round(e.low, 6), round(e.high, 6)] for m in ("HR@10", "NDCG@10", "MRR", "AUC")
                       for e in [mean_ci(per_user[m].dropna(), seed=seed)]}
        results[p] = res
    main = dict(results["sampled"])
    if "full" in results:
        main["full_ranking"] = {k: v for k, v in results["full"].items()}
    return main


def scorer_for_history(fitted_model, name: str, tokenizer, dataset, history, profile, fallback):
    """A test-time scorer of a trained model that reads ``history`` (e.g. the cold split's past-only histories)."""
    if name in SEQUENTIAL_MODELS:
        from .models.sequential import SequentialScorer

        return SequentialScorer(fitted_model, dataset.item_ids, history)
    if name in BERT_MODELS:
        from .device import detect_device
        from .pipeline import bert_scorer

        return bert_scorer(fitted_model, tokenizer, dataset, history, profile, detect_device())
    return fallback  # baselines score from what they were fitted on: cold items are unknown to them either way


def _split_metrics(scorer, model_for_history, name, tokenizer, ds, split, profile, seed, eval_users) -> dict:
    """Warm (or leave-last-out) metrics, and for a cold-start split the cold-item metrics under ``"cold"``."""
    from .data.splits import ColdStartSplit
    from .evaluate import make_cold_eval_set

    bert = name in BERT_MODELS
    protocols = _protocols(name)
    if not isinstance(split, ColdStartSplit):
        return evaluate_split(scorer, ds, split, profile, bert, seed, protocols, eval_users)
    metrics = {"warm": evaluate_split(scorer, ds, split.warm(), profile, bert, seed, protocols, eval_users)}
    cold_scorer = scorer_for_history(model_for_history, name, tokenizer, ds, split.cold_history, profile, scorer)
    cold_set = make_cold_eval_set(ds, split, profile.eval_negatives, seed=seed)
    metrics["cold"] = evaluate_split(cold_scorer, ds, None, profile, bert, seed, protocols, eval_set=cold_set)
    metrics["cold"]["cold_items"] = int(len(split.cold_items))
    return metrics


def cmd_train(args) -> dict:
    from .device import environment_report, get_profile, seed_everything
    from .pipeline import fit_recommender

    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, got {args.max_steps}")
    overrides = {} if args.max_steps is None else {"bert_max_steps": args.max_steps}
    if args.time_budget is not None:
        if args.time_budget <= 0:
            raise UsageError(f"--time-budget must be positive seconds, got {args.time_budget}")
        overrides["seq_time_budget"] = args.time_budget
    profile = get_profile(args.profile, **overrides)
    seed_everything(args.seed)
    bert = args.model in BERT_MODELS
    if args.item_features != "id" and args.model not in SEQUENTIAL_MODELS:
        raise UsageError(f"--item-features {args.item_features} applies to --model {' or '.join(SEQUENTIAL_MODELS)}, not {args.model}")
    if args.peft and not bert:
        raise UsageError(f"--peft {args.peft} applies to --model cross-encoder or two-tower, not {args.model}")
    ds, split = prepare_data(args.data, profile, args.seed, args.split, args.cold_fraction, args.all_users)
    train_split = split.warm() if args.split == "cold-items" else split
    fitted = fit_recommender(args.model, ds, train_split, profile, args.backbone, seed=args.seed, progress=not args.quiet, peft=args.peft,
                             item_features=args.item_features)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _save(fitted, out / "checkpoint", args, profile, ds)
    metrics = _split_metrics(fitted.scorer, fitted.model, args.model, fitted.tokenizer, ds, split, profile, args.seed, args.eval_users)
    metrics.update(data=args.data, model=args.model, item_features=args.item_features, split=args.split, peft=args.peft,
                   profile=profile.name, dataset_users=int(ds.n_users), train_seconds=round(fitted.train_seconds, 2),
                   steps=fitted.train_result.steps if fitted.train_result is not None else None,
                   environment=environment_report())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    return metrics


def _save(fitted, folder: Path, args, profile, dataset) -> None:
    from .models.baselines import save_baseline

    if args.model in BERT_MODELS:
        fitted.model.save(folder, fitted.tokenizer)
    elif args.model in SEQUENTIAL_MODELS:
        fitted.model.save(folder, dataset.item_ids)
    else:
        save_baseline(fitted.model, folder)
    # the resolved profile, not its name: "evaluate" must rebuild the same experiment where the default profile differs
    run = {"data": args.data, "model": args.model, "profile": dataclasses.asdict(profile), "seed": args.seed, "backbone": args.backbone,
           "peft": args.peft, "max_steps": getattr(args, "max_steps", None), "catalogue": catalogue_fingerprint(dataset),
           "item_features": args.item_features, "split": args.split, "cold_fraction": args.cold_fraction, "all_users": args.all_users}
    (folder / "run.json").write_text(json.dumps(run, indent=1))


def cmd_evaluate(args) -> dict:
    from .device import detect_device
    from .evaluate import history_for_test

    folder, run = _checkpoint_folder(args.checkpoint)
    profile = _run_profile(run, args.profile)
    bert = run["model"] in BERT_MODELS
    ds, split = prepare_data(args.data or run["data"], profile, run["seed"], run.get("split", "leave-last-out"),
                             run.get("cold_fraction", 0.1), run.get("all_users", False))
    _check_catalogue(run, ds, args.data or run["data"])
    test_split = split.warm() if run.get("split") == "cold-items" else split
    model, tokenizer = None, None
    if run["model"] in SEQUENTIAL_MODELS:
        from .models.sequential import SequentialRecommender, SequentialScorer

        model, _ = SequentialRecommender.load(folder)
        scorer = SequentialScorer(model, ds.item_ids, history_for_test(test_split))
    elif bert:
        from .models.backbone import load_tokenizer
        from .models.cross_encoder import CrossEncoder
        from .models.two_tower import TwoTower
        from .pipeline import bert_scorer

        model = (CrossEncoder if run["model"] == "cross-encoder" else TwoTower).load(folder)
        tokenizer = load_tokenizer(folder / "encoder")
        scorer = bert_scorer(model, tokenizer, ds, history_for_test(test_split), profile, detect_device())
    else:
        from .models.baselines import load_baseline

        scorer = load_baseline(folder).score
    metrics = _split_metrics(scorer, model, run["model"], tokenizer, ds, split, profile, run["seed"], args.eval_users)
    metrics.update(data=args.data or run["data"], model=run["model"], item_features=run.get("item_features", "id"),
                   split=run.get("split", "leave-last-out"), profile=profile.name)
    return metrics


def cmd_bench(args) -> dict:
    import math

    if args.target == "catalogue":
        return _bench_catalogue(args)
    if not args.checkpoint:
        raise UsageError("bench --target checkpoint needs --checkpoint (the --out folder of 'recbook train --model cross-encoder')")

    from .bench import make_pair_set, plot_pareto, run_benchmark, write_results
    from .compress.variants import make_variant
    from .device import cpu_features
    from .evaluate import make_eval_set
    from .models.backbone import load_tokenizer
    from .models.cross_encoder import CrossEncoder

    folder, run = _checkpoint_folder(args.checkpoint)
    if run["model"] != "cross-encoder":
        raise UsageError(f"--checkpoint {args.checkpoint!r} holds a {run['model']} model; bench measures cross-encoders")
    kinds = _bench_kinds(args.variants)
    _bench_threads(args)
    profile = _run_profile(run, args.profile)
    ds, split = prepare_data(run["data"], profile, run["seed"])
    _check_catalogue(run, ds, run["data"])
    tokenizer = load_tokenizer(folder / "encoder")
    model = CrossEncoder.load(folder).eval()
    eval_set = make_eval_set(ds, split, "test", profile.eval_negatives, n_users=args.eval_users or profile.bert_eval_users, seed=run["seed"])
    pairs = make_pair_set(eval_set, ds, tokenizer, profile.max_length, profile.max_history_items)
    out = Path(args.out)
    variants = [make_variant(k, model, out / "variants", dataset=ds, tokenizer=tokenizer) for k in kinds]  # the files stay there
    table = run_benchmark(variants, pairs, tokenizer, repeats=args.repeats, progress=not args.quiet)
    files = write_results(table, out)
    plot_pareto(table, out / "bench_pareto.png")
    return {"protocol": table.attrs["protocol"], "threads": table.attrs["threads"], "cpu_features": [k for k, v in cpu_features().items() if v],
            "files": {k: str(v) for k, v in files.items()},
            "slow_paths": table.attrs["slow_paths"],  # variants measured briefly on this CPU, and why (NaN quality → null)
            "table": {name: {c: (round(float(row[c]), 4) if math.isfinite(float(row[c])) else None)
                             for c in ("NDCG@10", "AUC", "size_MB", "p50_ms_b1", "p50_ms_b64", "quality_kept", "smaller", "faster_b64")}
                      for name, row in table.iterrows()}}


def _bench_catalogue(args) -> dict:
    """``bench --target catalogue``: variants of the BERT that embeds the catalogue, judged by the text SASRec on every user."""
    import math

    from .bench import pareto_front, plot_pareto, write_results
    from .compress.catalogue import catalogue_bench, measure_variants, min_kept_low
    from .compress.variants import make_variant
    from .data import load_dataset
    from .device import cpu_features

    kinds = _bench_kinds(args.variants)
    _bench_threads(args)
    if args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    ds = load_dataset(args.data or "movielens-100k")
    bench = catalogue_bench(ds, seed=args.seed, epochs=args.epochs, encoder=args.backbone, progress=not args.quiet)
    out = Path(args.out)
    variants = [make_variant(k, bench.teacher, out / "variants", dataset=ds, tokenizer=bench.tokenizer) for k in kinds]
    table, _ = measure_variants(bench, variants, repeats=args.repeats, progress=not args.quiet)
    table["quality_kept"] = min_kept_low(table)
    table["pareto (latency)"] = pareto_front(table, "quality_kept", "p50_ms_b64")
    table.attrs["protocol"] = (f"catalogue encoder of a text SASRec on {ds.name}: warm NDCG@10 and AUC (full ranking, {bench.info['warm_users']} "
                               f"users) and cold AUC ({bench.info['cold_users']} users); quality_kept = lowest 95% CI end of the paired "
                               "warm and cold AUC ratios to fp32")
    files = write_results(table, out)
    plot_pareto(table, out / "bench_pareto.png", quality_col="quality_kept")
    cols = [c for c in table.columns if c not in ("notes", "pareto (latency)")]
    return {"protocol": table.attrs["protocol"], "threads": table.attrs["threads"], "cpu_features": [k for k, v in cpu_features().items() if v],
            "files": {k: str(v) for k, v in files.items()}, "slow_paths": table.attrs["slow_paths"],
            "table": {name: {c: (round(float(row[c]), 4) if math.isfinite(float(row[c])) else None) for c in cols} for name, row in table.iterrows()}}


def _bench_threads(args) -> None:
    import torch

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads or torch.get_num_threads())


def _bench_kinds(spec: str) -> list[str]:
    kinds = [k.strip() for k in spec.split(",") if k.strip()]
    bad = [k for k in kinds if k not in VARIANT_KINDS]
    if bad or not kinds:
        raise UsageError(f"--variants {spec!r}: unknown {bad}; choose from {', '.join(VARIANT_KINDS)}")
    return kinds if kinds[0] == "fp32" else ["fp32"] + [k for k in kinds if k != "fp32"]  # the baseline every ratio is against


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recbook", description="Train and evaluate the recommenders of the recbook course.")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="fit a model, evaluate it on the test split, save metrics.json and the checkpoint")
    tr.add_argument("--data", required=True, help=DATA_HELP)
    tr.add_argument("--model", required=True, choices=MODEL_NAMES)
    tr.add_argument("--profile", choices=("quick", "full"), default=None, help="default: $RECBOOK_PROFILE, else quick on CPU")
    tr.add_argument("--out", required=True, help="output folder")
    tr.add_argument("--backbone", default=None, help="BERT folder or Hub id (default: offline all-MiniLM-L6-v2)")
    tr.add_argument("--peft", choices=("lora",), default=None, help="train a BERT model with LoRA (merged into the weights after training)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--eval-users", type=int, default=None,
                    help="score a seeded subset of test users (default: the profile's for BERT models, all for baselines)")
    tr.add_argument("--max-steps", type=int, default=None, help="BERT optimizer steps (default: the profile's budget)")
    tr.add_argument("--item-features", choices=("id", "text", "hybrid"), default="id",
                    help="sasrec/bert4rec item representation: learned id, frozen-BERT text projection, or both")
    tr.add_argument("--split", choices=SPLITS, default="leave-last-out",
                    help="cold-items: the newest items never seen in training; metrics.json then has 'warm' and 'cold'")
    tr.add_argument("--cold-fraction", type=float, default=0.1, help="share of items made cold by --split cold-items (default 0.1)")
    tr.add_argument("--all-users", action="store_true", help="MovieLens: every user, not the profile's subset")
    tr.add_argument("--time-budget", type=float, default=None, help="sasrec/bert4rec: seconds of training (default: the profile's)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    ev = sub.add_parser("evaluate", help="re-evaluate a saved model")
    ev.add_argument("--checkpoint", required=True, help="the --out folder of a train run (or its checkpoint/ folder)")
    ev.add_argument("--data", default=None, help=f"{DATA_HELP}; default: the data it was trained on")
    ev.add_argument("--profile", choices=("quick", "full"), default=None, help="default: the profile stored in run.json")
    ev.add_argument("--eval-users", type=int, default=None, help="as for train")
    be = sub.add_parser("bench", help="measure compressed variants (quality, latency, size) of a cross-encoder checkpoint "
                                      "or of the BERT that embeds the catalogue")
    be.add_argument("--target", choices=("checkpoint", "catalogue"), default="checkpoint",
                    help="checkpoint: a cross-encoder from 'recbook train' (sampled protocol on --eval-users); catalogue: the "
                         "sentence encoder of a text SASRec, judged on every user with paired CIs (notebooks 06-09)")
    be.add_argument("--checkpoint", default=None, help="--target checkpoint: the --out folder of 'recbook train --model cross-encoder'")
    be.add_argument("--data", default=None, help="--target catalogue: " + DATA_HELP + " (default movielens-100k)")
    be.add_argument("--seed", type=int, default=0, help="--target catalogue: seed of the split and the recommender")
    be.add_argument("--backbone", default=None, help="--target catalogue: the sentence encoder (default: offline all-MiniLM-L6-v2)")
    be.add_argument("--epochs", type=int, default=40, help="--target catalogue: most epochs for the recommender (early stopping)")
    be.add_argument("--variants", default="fp32,int8,onnx-int8,prune50-int8", help="comma-separated, from: " + ", ".join(
        VARIANT_KINDS))
    be.add_argument("--out", required=True, help="output folder for bench.csv, bench.md, bench_pareto.png")
    be.add_argument("--profile", choices=("quick", "full"), default=None, help="default: the profile stored in run.json")
    be.add_argument("--eval-users", type=int, default=None, help="test users whose 100 candidates are scored (default: the profile's)")
    be.add_argument("--repeats", type=int, default=10, help="timed repeats per variant and batch size (interleaved)")
    be.add_argument("--threads", type=int, default=None, help="torch/ONNX Runtime threads (default: torch's)")
    be.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits with 2 on unknown choices / missing arguments
    try:
        if getattr(args, "eval_users", None) is not None and args.eval_users < 1:
            raise UsageError(f"--eval-users must be at least 1, got {args.eval_users}")
        metrics = {"train": cmd_train, "evaluate": cmd_evaluate, "bench": cmd_bench}[args.command](args)
    except UsageError as exc:
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    shown = {k: v for k, v in metrics.items() if k != "environment"}
    print(json.dumps(shown, indent=1, default=str))
    return 0
