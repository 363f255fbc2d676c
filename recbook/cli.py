"""Command line: train and evaluate any recommender of the course.

    python -m recbook train --data synthetic --model cross-encoder --profile quick --out runs/ce
    python -m recbook train --data movielens-100k --model cross-encoder --peft lora --out runs/ce-lora
    python -m recbook evaluate --checkpoint runs/ce --data synthetic
    python -m recbook bench --checkpoint runs/ce --variants fp32,int8,onnx-int8,prune50-int8 --out runs/bench
    python -m recbook bench --target catalogue --data movielens-100k --variants fp32,int8,onnx-int8 --out runs/bench-cat
    python -m recbook export --retriever runs/sasrec --reranker runs/ce --out bundles/v1
    python -m recbook update --model runs/sasrec --data movielens-100k --since 1998-03-01 --until 1998-04-01 --strategy replay --out runs/v2
    RECBOOK_API_KEYS=... python -m recbook serve --model bundles/v1 --port 8000
    python -m recbook loadtest --url http://127.0.0.1:8000 --rps 20 --duration 10 --api-key ...

``train`` writes ``OUT/metrics.json`` (protocol, HR@10, NDCG@10, MRR, AUC, train time, environment)
and the model under ``OUT/checkpoint/`` (safetensors) with ``run.json``: the data, seed and the
*resolved* profile (every field), plus the catalogue trained on (item count and a hash of the sorted
item ids). ``evaluate`` re-scores a saved model under the same protocol and profile on any machine
(``--profile`` overrides, with a notice) and refuses data whose catalogue differs. ``bench`` measures compressed variants of a cross-encoder checkpoint
(:mod:`recbook.bench`) or, with ``--target catalogue``, of the BERT that embeds the catalogue, judged by a text SASRec on
every user with paired CIs (:mod:`recbook.compress.catalogue`), and writes ``bench.csv``, ``bench.md`` and a Pareto figure. ``--data`` is ``synthetic``, ``movielens-100k`` or a folder in the
``recbook.data.load_folder`` format. ``export`` writes a serving bundle (:mod:`recbook.serve.bundle`: a versioned
folder, every file listed with its sha256 in ``manifest.json``); ``serve`` runs the recommendation service on it with
uvicorn (:mod:`recbook.serve.app`; API keys from ``RECBOOK_API_KEYS``, loopback only unless ``--allow-remote``);
``loadtest`` offers an open-loop Poisson load to a local service and prints latency percentiles
(:mod:`recbook.serve.loadtest`). ``update`` updates a saved sasrec with newer interactions by one strategy
(:func:`recbook.continual.update_run`) and writes a new versioned checkpoint and serving bundle. Bad arguments print a clear message and exit with code 2.

This module only parses arguments, calls the library (:mod:`recbook.pipeline`, :mod:`recbook.bench`,
:mod:`recbook.compress`) and prints; its imports are light (``--help`` loads neither torch nor the
compression code), the heavy modules load inside each command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .compress.variants import VARIANT_KINDS, missing_packages
from .errors import ConfigError
from .models import MODEL_NAMES
from .profile import PROFILES
from .usage import DATA_HELP, SPLITS, UsageError, check_out_folder

PROFILE_NAMES = tuple(PROFILES)

# the library names a bad setting by its field (recbook.errors.ConfigError); the command line by its flag
FLAGS = {"backbone": "--backbone", "text_encoder": "--backbone", "peft": "--peft", "item_features": "--item-features", "model": "--model",
         "data": "--data", "split": "--split", "cold_fraction": "--cold-fraction", "max_steps": "--max-steps", "time_budget": "--time-budget",
         "seed": "--seed", "eval_users": "--eval-users"}


def flag_error(exc: ConfigError) -> UsageError:
    """A library :class:`ConfigError` as the command line reports it: the field's flag first."""
    flag = FLAGS.get(exc.field, f"--{exc.field.replace('_', '-')}")
    text = str(exc)
    if exc.value is not None and text.startswith(f"{exc.field}={exc.value!r}"):
        return UsageError(f"{flag} {exc.value}{text[len(f'{exc.field}={exc.value!r}'):]}")
    return UsageError(f"{flag}: {text}")


def cmd_train(args) -> dict:
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, got {args.max_steps}")
    if args.time_budget is not None and args.time_budget <= 0:
        raise UsageError(f"--time-budget must be positive seconds, got {args.time_budget}")
    from .models import config_fields
    from .pipeline import model_overrides

    model_overrides(args.model, args.seed, model_name_or_path=args.backbone, peft=args.peft, item_features=args.item_features)
    out = check_out_folder(args.out)

    from .device import environment_report, get_profile, seed_everything
    from .pipeline import check_backbone, fit_recommender, prepare_data, run_record, save_fitted, split_metrics

    fields = config_fields(args.model)
    if "backbone" in fields or ("text_encoder" in fields and args.item_features != "id"):  # the models that read --backbone
        check_backbone(args.backbone)
    overrides = {} if args.max_steps is None else {"bert_max_steps": args.max_steps}
    if args.time_budget is not None:
        overrides["seq_time_budget"] = args.time_budget
    profile = get_profile(args.profile, **overrides)
    seed_everything(args.seed)
    ds, split = prepare_data(args.data, profile, args.seed, args.split, args.cold_fraction, args.all_users)
    train_split = split.warm() if args.split == "cold-items" else split
    fitted = fit_recommender(args.model, ds, train_split, profile, args.backbone, seed=args.seed, progress=not args.quiet, peft=args.peft,
                             item_features=args.item_features)
    out.mkdir(parents=True, exist_ok=True)
    run = run_record(args.data, args.model, profile, args.seed, ds, backbone=args.backbone, peft=args.peft, max_steps=args.max_steps,
                     item_features=args.item_features, split=args.split, cold_fraction=args.cold_fraction, all_users=args.all_users)
    save_fitted(fitted, out / "checkpoint", run)
    metrics = split_metrics(fitted.model, ds, split, profile, args.seed, args.eval_users)
    result = fitted.train_result
    metrics.update(data=args.data, model=args.model, item_features=args.item_features, split=args.split, peft=args.peft,
                   profile=profile.name, dataset_users=int(ds.n_users), train_seconds=round(fitted.train_seconds, 2),
                   steps=getattr(result, "steps", None), stop_reason=getattr(result, "stop_reason", None),
                   config=fitted.model.get_config(), environment=environment_report())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    return metrics


def _run_profile(run: dict, override: str | None):
    """The profile stored in ``run.json``, unless ``--profile`` overrides it (with a one-line notice)."""
    from .pipeline import run_profile, stored_profile_name

    if override is not None and run.get("profile") is not None:
        print(f"note: --profile {override} overrides the profile the checkpoint was trained with ({stored_profile_name(run)}, "
              "stored in run.json)", file=sys.stderr)
    return run_profile(run, override)


def cmd_evaluate(args) -> dict:
    from .pipeline import check_catalogue, checkpoint_folder, load_trained, prepare_data, split_metrics

    folder, run = checkpoint_folder(args.checkpoint)
    profile = _run_profile(run, args.profile)
    data = args.data or run["data"]
    ds, split = prepare_data(data, profile, run["seed"], run.get("split", "leave-last-out"), run.get("cold_fraction", 0.1),
                             run.get("all_users", False))
    check_catalogue(run, ds, data)
    model = load_trained(folder, run)
    metrics = split_metrics(model, ds, split, profile, run["seed"], args.eval_users)
    metrics.update(data=data, model=run["model"], item_features=run.get("item_features", "id"),
                   split=run.get("split", "leave-last-out"), profile=profile.name)
    return metrics


def cmd_bench(args) -> dict:
    if args.target == "checkpoint" and not args.checkpoint:
        raise UsageError("bench --target checkpoint needs --checkpoint (the --out folder of 'recbook train --model cross-encoder')")
    kinds = _bench_kinds(args.variants)
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.target == "catalogue" and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    out = check_out_folder(args.out)
    if args.target == "catalogue":
        return _bench_catalogue(args, kinds, out)

    from .bench import make_pair_set, plot_pareto, run_benchmark, write_results
    from .compress.variants import make_variant
    from .evaluate import make_eval_set
    from .models.cross_encoder import CrossEncoderRecommender
    from .pipeline import check_catalogue, checkpoint_folder, prepare_data

    folder, run = checkpoint_folder(args.checkpoint)
    if run["model"] != "cross-encoder":
        raise UsageError(f"--checkpoint {args.checkpoint!r} holds a {run['model']} model; bench measures cross-encoders")
    _set_threads(args.threads)
    profile = _run_profile(run, args.profile)
    ds, split = prepare_data(run["data"], profile, run["seed"])
    check_catalogue(run, ds, run["data"])
    recommender = CrossEncoderRecommender.from_pretrained(folder)
    tokenizer, model = recommender.tokenizer, recommender.network.eval()
    eval_set = make_eval_set(ds, split, "test", profile.eval_negatives, n_users=args.eval_users or profile.bert_eval_users, seed=run["seed"])
    pairs = make_pair_set(eval_set, ds, tokenizer, profile.max_length, profile.max_history_items)
    variants = [make_variant(k, model, out / "variants", dataset=ds, tokenizer=tokenizer) for k in kinds]  # the files stay there
    table = run_benchmark(variants, pairs, tokenizer, repeats=args.repeats, progress=not args.quiet)
    files = write_results(table, out)
    plot_pareto(table, out / "bench_pareto.png")
    columns = ("NDCG@10", "AUC", "size_MB", "p50_ms_b1", "p50_ms_b64", "quality_kept", "smaller", "faster_b64",
               "faster_b64 low", "faster_b64 high", "speed_b64")
    return _bench_summary(table, files, columns)


def _bench_catalogue(args, kinds: list[str], out: Path) -> dict:
    """``bench --target catalogue``: variants of the BERT that embeds the catalogue, judged by the text SASRec on every user."""
    from .bench import pareto_front, plot_pareto, write_results
    from .compress.catalogue import catalogue_bench, measure_variants, min_kept_low
    from .compress.variants import make_variant
    from .data import DataError, load_dataset
    from .pipeline import check_backbone

    check_backbone(args.backbone)
    _set_threads(args.threads)
    data = args.data or "movielens-100k"
    try:
        ds = load_dataset(data)
    except (DataError, FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--data {data!r}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    bench = catalogue_bench(ds, seed=args.seed, epochs=args.epochs, encoder=args.backbone, progress=not args.quiet)
    variants = [make_variant(k, bench.teacher, out / "variants", dataset=ds, tokenizer=bench.tokenizer) for k in kinds]
    table, _ = measure_variants(bench, variants, repeats=args.repeats, progress=not args.quiet)
    table["quality_kept"] = min_kept_low(table)
    table["pareto (latency)"] = pareto_front(table, "quality_kept", "p50_ms_b64")
    table.attrs["protocol"] = (f"catalogue encoder of a text SASRec on {ds.name}: warm NDCG@10 and AUC (full ranking, {bench.info['warm_users']} "
                               f"users) and cold AUC ({bench.info['cold_users']} users); quality_kept = lowest 95% CI end of the paired "
                               "warm and cold AUC ratios to fp32")
    files = write_results(table, out)
    plot_pareto(table, out / "bench_pareto.png", quality_col="quality_kept")
    return _bench_summary(table, files, [c for c in table.columns if c not in ("notes", "pareto (latency)")])


def _bench_summary(table, files: dict, columns) -> dict:
    """What ``bench`` prints: protocol, threads, CPU features, files, slow paths and the table (NaN → null;
    text columns such as the speed verdict as they are)."""
    import math

    from .device import cpu_features

    def cell(value):
        if isinstance(value, str):
            return value
        return round(float(value), 4) if math.isfinite(float(value)) else None

    return {"protocol": table.attrs["protocol"], "threads": table.attrs["threads"], "cpu_features": [k for k, v in cpu_features().items() if v],
            "files": {k: str(v) for k, v in files.items()},
            "slow_paths": table.attrs["slow_paths"],  # variants measured briefly on this CPU, and why (NaN quality → null)
            "table": {name: {c: cell(row[c]) for c in columns}
                      for name, row in table.iterrows()}}


def _set_threads(threads: int | None) -> None:
    import torch

    torch.set_num_threads(threads or torch.get_num_threads())


def _bench_kinds(spec: str) -> list[str]:
    kinds = [k.strip() for k in spec.split(",") if k.strip()]
    bad = [k for k in kinds if k not in VARIANT_KINDS]
    if bad or not kinds:
        raise UsageError(f"--variants {spec!r}: unknown {bad}; choose from {', '.join(VARIANT_KINDS)}")
    missing = missing_packages(kinds)
    if missing:
        needs = sorted({m for ms in missing.values() for m in ms})
        raise UsageError(f"--variants {', '.join(missing)} need(s) {' and '.join(needs)}, not installed here "
                         f"(pip install {' '.join(needs)}, or recbook's 'compress' extra); or leave those variants out")
    return kinds if kinds[0] == "fp32" else ["fp32"] + [k for k in kinds if k != "fp32"]  # the baseline every ratio is against


def cmd_update(args) -> dict:
    from .continual import UpdateConfig, update_run

    if args.epochs < 1 or args.replay_size < 0 or args.ewc_lambda < 0:
        raise UsageError("--epochs must be at least 1, --replay-size and --ewc-lambda non-negative")
    config = UpdateConfig(epochs=args.epochs, replay_size=args.replay_size, ewc_lambda=args.ewc_lambda, seed=args.seed)
    return update_run(args.model, args.data, args.until, args.strategy, args.out, since=args.since, config=config,
                      version=args.version)


def cmd_export(args) -> dict:
    out = check_out_folder(args.out)  # a file, or a folder under a file: exit 2 before anything is loaded
    from .serve.bundle import BundleError, export_bundle, read_manifest

    try:
        folder = export_bundle(args.retriever, out, reranker_run=args.reranker, version=args.version, parent=args.parent)
    except BundleError as exc:
        raise UsageError(str(exc)) from None
    manifest = read_manifest(folder)
    return {"bundle": str(folder), "version": manifest["version"], "parent": manifest["parent"], "files": len(manifest["files"]),
            "reranker": manifest["reranker"] is not None, "data": manifest["data"]}


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def cmd_serve(args) -> None:
    """Check everything that can be checked before listening (host, keys, the bundle's sha256 sums), then run uvicorn."""
    import os

    if args.host not in LOOPBACK and not args.allow_remote:
        raise UsageError(f"--host {args.host}: the course's servers listen on 127.0.0.1 only; pass --allow-remote to listen on "
                         f"{args.host} (and put TLS and a firewall in front)")
    for name in ("port", "workers", "max_batch_size", "retrieve_n"):
        value = getattr(args, name)
        if value < (0 if name == "port" else 1) or (name == "port" and value > 65535):
            raise UsageError(f"--{name.replace('_', '-')} {value} is out of range")
    if args.rerank_k < 0 or args.max_wait_ms < 0 or (args.threads is not None and args.threads < 1):
        raise UsageError("--rerank-k and --max-wait-ms must be >= 0, --threads >= 1")
    from .serve.app import BUNDLE_ENV, INSECURE_ENV, OPTIONS_ENV, ServeSettings
    from .serve.bundle import BundleError, verify_bundle
    from .serve.security import SecurityConfigError

    options = {"batching": not args.no_batching, "max_batch_size": args.max_batch_size, "max_wait_ms": args.max_wait_ms,
               "retrieve_n": args.retrieve_n, "rerank_k": args.rerank_k}
    if args.threads is not None:
        options.update(ort_threads=args.threads, torch_threads=args.threads)
    try:
        ServeSettings.from_env(insecure_dev=args.insecure_dev, **options).check()
        verify_bundle(args.model)
    except (SecurityConfigError, BundleError) as exc:
        raise UsageError(str(exc)) from None
    os.environ[BUNDLE_ENV] = str(Path(args.model).resolve())
    os.environ[OPTIONS_ENV] = json.dumps(options)
    if args.insecure_dev:
        os.environ[INSECURE_ENV] = "1"
    import uvicorn

    from .serve.logs import uvicorn_log_config

    uvicorn.run("recbook.serve.app:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                access_log=False, timeout_graceful_shutdown=30, log_config=uvicorn_log_config())
    return None


def cmd_loadtest(args) -> dict | None:
    import os

    if args.rps <= 0 or args.duration <= 0 or args.concurrency < 1:
        raise UsageError("--rps and --duration must be positive, --concurrency at least 1")
    if args.max_requests is not None and args.max_requests < 1:
        raise UsageError(f"--max-requests must be at least 1, got {args.max_requests}")
    payloads = None
    if args.payloads is not None:
        try:
            payloads = json.loads(Path(args.payloads).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--payloads {args.payloads!r}: {exc}") from None
        if not isinstance(payloads, list) or not payloads or not all(isinstance(p, dict) for p in payloads):
            raise UsageError(f"--payloads {args.payloads!r} must hold a non-empty JSON list of request bodies (objects)")
    from .serve.loadtest import check_loopback, format_report, run_loadtest

    try:
        check_loopback(args.url)
    except ValueError as exc:
        raise UsageError(f"--url: {exc}") from None
    result = run_loadtest(args.url, args.rps, args.duration, concurrency=args.concurrency, path=args.path, payloads=payloads,
                          api_key=args.api_key or os.environ.get("RECBOOK_API_KEY"), max_requests=args.max_requests, seed=args.seed)
    if args.json:
        return {k: v for k, v in result.items() if not isinstance(v, list)}  # the per-request lists stay out of the summary
    print(format_report(result))
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recbook", description="Train, evaluate, export and serve the recommenders of the recbook course.")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="fit a model, evaluate it on the test split, save metrics.json and the checkpoint")
    tr.add_argument("--data", required=True, help=DATA_HELP)
    tr.add_argument("--model", required=True, choices=MODEL_NAMES)
    tr.add_argument("--profile", choices=PROFILE_NAMES, default=None, help="default: $RECBOOK_PROFILE, else quick on CPU")
    tr.add_argument("--out", required=True, help="output folder (created if missing; must not be a file)")
    tr.add_argument("--backbone", default=None, help="BERT folder or Hub id (default: offline all-MiniLM-L6-v2)")
    tr.add_argument("--peft", choices=("lora", "ia3", "prefix"), default=None,
                    help="train a BERT model through a PEFT adapter (LoRA is merged into the weights after training)")
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
    ev.add_argument("--profile", choices=PROFILE_NAMES, default=None, help="default: the profile stored in run.json")
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
    be.add_argument("--profile", choices=PROFILE_NAMES, default=None, help="default: the profile stored in run.json")
    be.add_argument("--eval-users", type=int, default=None, help="test users whose 100 candidates are scored (default: the profile's)")
    be.add_argument("--repeats", type=int, default=10, help="timed repeats per variant and batch size (interleaved)")
    be.add_argument("--threads", type=int, default=None, help="torch/ONNX Runtime threads (default: torch's)")
    be.add_argument("--quiet", action="store_true")
    ex = sub.add_parser("export", help="write a serving bundle (versioned, sha256-verified folder) from a sasrec run and an optional cross-encoder run")
    ex.add_argument("--retriever", required=True, help="the --out folder of 'recbook train --model sasrec' (or bert4rec)")
    ex.add_argument("--reranker", default=None, help="the --out folder of 'recbook train --model cross-encoder' (exported as int8 ONNX)")
    ex.add_argument("--out", required=True, help="the bundle folder to create (must not exist or be empty: a version is written once)")
    ex.add_argument("--version", default=None, help="version name (default: UTC time stamp + content hash)")
    ex.add_argument("--parent", default=None, help="the version this one replaces (recorded in manifest.json)")
    up = sub.add_parser("update", help="update a saved sasrec with newer interactions (frozen|finetune|replay|ewc|lora|retrain); "
                                       "writes a new versioned checkpoint and serving bundle")
    up.add_argument("--model", required=True, help="the --out folder of 'recbook train --model sasrec' or of an earlier update")
    up.add_argument("--data", required=True, help=DATA_HELP)
    up.add_argument("--until", required=True, help="end of the new data (exclusive): a date such as 1998-03-01 (UTC) or Unix seconds")
    up.add_argument("--since", default=None, help="start of the new data (default: the data_until an earlier update recorded)")
    up.add_argument("--strategy", required=True, choices=("frozen", "finetune", "replay", "ewc", "lora", "retrain"))
    up.add_argument("--out", required=True, help="a new folder for the updated version (checkpoint/, bundle/, update.json)")
    up.add_argument("--epochs", type=int, default=3, help="epochs over the new data (fine-tuning strategies)")
    up.add_argument("--replay-size", type=int, default=5000, help="replay: past interactions kept in the reservoir")
    up.add_argument("--ewc-lambda", type=float, default=1.0, help="ewc: penalty weight (Fisher scaled to mean 1)")
    up.add_argument("--version", default=None, help="version name (default: strategy, date and time stamp)")
    up.add_argument("--seed", type=int, default=0)
    se = sub.add_parser("serve", help="run the recommendation service on a bundle (uvicorn; keys from RECBOOK_API_KEYS)")
    se.add_argument("--model", required=True, help="a bundle folder written by 'recbook export'")
    se.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need --allow-remote)")
    se.add_argument("--port", type=int, default=8000)
    se.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (each loads the bundle; rate limits are per process)")
    se.add_argument("--insecure-dev", action="store_true", help="serve without API keys (local experiments only; logged loudly)")
    se.add_argument("--allow-remote", action="store_true", help="allow a --host other than loopback (put TLS and a firewall in front)")
    se.add_argument("--no-batching", action="store_true", help="call the re-ranker once per request (no micro-batching)")
    se.add_argument("--max-batch-size", type=int, default=32, help="requests merged into one re-ranker call (default 32)")
    se.add_argument("--max-wait-ms", type=float, default=5.0, help="longest a request waits for a batch to fill (default 5)")
    se.add_argument("--retrieve-n", type=int, default=100, help="candidates retrieved per request (default 100)")
    se.add_argument("--rerank-k", type=int, default=20, help="of which the cross-encoder re-ranks the first k (default 20; 0 = off)")
    se.add_argument("--threads", type=int, default=None, help="ONNX Runtime and torch threads per worker (default: ONNX Runtime's, torch 1)")
    lt = sub.add_parser("loadtest", help="open-loop load test (Poisson arrivals) of a service on this machine")
    lt.add_argument("--url", required=True, help="base URL of the service, e.g. http://127.0.0.1:8000 (loopback only)")
    lt.add_argument("--rps", type=float, required=True, help="offered requests per second")
    lt.add_argument("--duration", type=float, required=True, help="seconds of arrivals")
    lt.add_argument("--concurrency", type=int, default=64, help="most requests in flight (default 64)")
    lt.add_argument("--path", default="/recommend", help="endpoint (default /recommend)")
    lt.add_argument("--api-key", default=None, help="sent as X-API-Key (default: $RECBOOK_API_KEY, if set)")
    lt.add_argument("--payloads", default=None, help="JSON file: a list of request bodies sent in turn (default: the module's example)")
    lt.add_argument("--max-requests", type=int, default=None, help="stop after this many requests")
    lt.add_argument("--seed", type=int, default=0, help="seed of the arrival times")
    lt.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits with 2 on unknown choices / missing arguments
    try:
        if getattr(args, "eval_users", None) is not None and args.eval_users < 1:
            raise UsageError(f"--eval-users must be at least 1, got {args.eval_users}")
        metrics = {"train": cmd_train, "evaluate": cmd_evaluate, "bench": cmd_bench, "export": cmd_export, "update": cmd_update, "serve": cmd_serve,
                   "loadtest": cmd_loadtest}[args.command](args)
    except (UsageError, ConfigError) as exc:
        shown = flag_error(exc) if isinstance(exc, ConfigError) and not isinstance(exc, UsageError) else exc
        print(f"{parser.prog} {args.command}: error: {shown}", file=sys.stderr)
        return 2
    if metrics is None:  # serve and loadtest print their own output
        return 0
    shown = {k: v for k, v in metrics.items() if k != "environment"}
    print(json.dumps(shown, indent=1, default=str))
    return 0
