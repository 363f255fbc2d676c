"""``python -m recbook bench``: compressed variants of a cross-encoder checkpoint, or of the BERT that embeds the
catalogue, measured for quality, latency and size."""

from __future__ import annotations

from pathlib import Path

from recbook.cli.flags import check_out_folder
from recbook.cli.train import _run_profile
from recbook.compress.variants import VARIANT_KINDS, missing_packages
from recbook.usage import UsageError


def cmd_bench(args) -> dict:
    if args.target == "request":
        return _bench_request(args)
    if args.target == "checkpoint" and not args.checkpoint:
        raise UsageError("bench --target checkpoint needs --checkpoint (the --out folder of 'recbook train --model cross-encoder')")
    kinds = _bench_kinds(args.variants or "fp32,int8,onnx-int8,prune50-int8")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.target == "catalogue" and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    out = check_out_folder(args.out)
    if args.target == "catalogue":
        return _bench_catalogue(args, kinds, out)

    from recbook.compress.bench import make_pair_set, run_benchmark
    from recbook.compress.report import plot_pareto, write_results
    from recbook.compress.variants import make_variant
    from recbook.evaluation.protocol import make_eval_set
    from recbook.models.cross_encoder import CrossEncoderRecommender
    from recbook.runs.recipe import check_catalogue, checkpoint_folder, prepare_data

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
    known = split.train["item_id"].unique()  # trimming keeps the tokens of items known at training time
    variants = [make_variant(k, model, out / "variants", dataset=ds, tokenizer=tokenizer, vocabulary_items=known) for k in kinds]  # the files stay there
    table = run_benchmark(variants, pairs, tokenizer, repeats=args.repeats, progress=not args.quiet)
    files = write_results(table, out)
    plot_pareto(table, out / "bench_pareto.png")
    columns = ("NDCG@10", "AUC", "size_MB", "p50_ms_b1", "p50_ms_b64", "quality_kept", "smaller", "faster_b64",
               "faster_b64 low", "faster_b64 high", "speed_b64")
    return _bench_summary(table, files, columns)


def _bench_catalogue(args, kinds: list[str], out: Path) -> dict:
    """``bench --target catalogue``: variants of the BERT that embeds the catalogue, judged by the text SASRec on every user."""
    from recbook.compress.catalogue import catalogue_bench, measure_variants, min_kept_low
    from recbook.compress.report import pareto_front, plot_pareto, write_results
    from recbook.compress.variants import make_variant
    from recbook.data import DataError, load_dataset
    from recbook.runs.recipe import check_backbone

    check_backbone(args.backbone)
    _set_threads(args.threads)
    data = args.data or "movielens-100k"
    try:
        ds = load_dataset(data)
    except (DataError, FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--data {data!r}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    bench = catalogue_bench(ds, seed=args.seed, epochs=args.epochs, encoder=args.backbone, progress=not args.quiet)
    variants = [make_variant(k, bench.teacher, out / "variants", dataset=ds, tokenizer=bench.tokenizer, vocabulary_items=bench.warm_items)
                for k in kinds]
    table, _ = measure_variants(bench, variants, repeats=args.repeats, progress=not args.quiet)
    table["quality_kept"] = min_kept_low(table)
    table["pareto (latency)"] = pareto_front(table, "quality_kept", "p50_ms_b64")
    table.attrs["protocol"] = (f"catalogue encoder of a text SASRec on {ds.name}: warm NDCG@10 and AUC (full ranking, {bench.info['warm_users']} "
                               f"users) and cold AUC ({bench.info['cold_users']} users, new items ranked among other new items); quality_kept = lowest 95% CI end of the paired "
                               "warm and cold AUC ratios to fp32")
    files = write_results(table, out)
    plot_pareto(table, out / "bench_pareto.png", quality_col="quality_kept")
    return _bench_summary(table, files, [c for c in table.columns if c not in ("notes", "pareto (latency)")])


def _bench_summary(table, files: dict, columns) -> dict:
    """What ``bench`` prints: protocol, threads, CPU features, files, slow paths and the table (NaN → null;
    text columns such as the speed verdict as they are)."""
    import math

    from recbook.perf.device import cpu_features

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


def _bench_request(args) -> dict:
    """``bench --target request``: the request path of a sequential run, judged by full-ranking NDCG@10 on every test user,
    top-10 overlap with fp32 and CPU ms per request (:func:`recbook.compress.request_bench.run_request_bench`)."""
    if not args.model:
        raise UsageError("bench --target request needs --model (the --out folder of 'recbook train --model lmrec', or sasrec)")
    from recbook.compress.request_bench import request_bench_markdown, run_request_bench
    from recbook.compress.request_variants import VARIANTS, parse_variant

    names = list(VARIANTS) if args.variants is None else [v.strip() for v in args.variants.split(",") if v.strip()]
    if not names:
        raise UsageError("--variants is empty; name at least one request variant, e.g. onnx-int8+table-int8")
    for name in names:
        try:
            parse_variant(name)
        except ValueError as exc:
            raise UsageError(f"--variants: {exc}") from None
    if "fp32" not in names:
        names = ["fp32", *names]  # the reference every difference and overlap is measured against
    if args.requests < 1 or (args.threads is not None and args.threads < 1) or args.repeats < 1:
        raise UsageError("--requests and --repeats must be at least 1, --threads at least 1")
    if not 0 <= args.margin < 1:
        raise UsageError(f"--margin must be in [0, 1), got {args.margin}")
    out = check_out_folder(args.out)
    records = run_request_bench(args.model, out, names, margin=args.margin, rounds=args.repeats, n_requests=args.requests,
                                threads=args.threads or 1, seed=args.seed, eval_users=args.eval_users)
    print(request_bench_markdown(records))
    return {"request_bench": str(out / "request_bench.json"), "variants": [r["variant"] for r in records],
            "verdicts": {r["variant"]: r["verdict"] for r in records}}


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


