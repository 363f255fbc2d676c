"""``python -m recbook train`` and ``evaluate``: fit any registered model on a data source, write metrics.json and
the checkpoint; re-score a saved checkpoint under the protocol and profile it was trained with."""

from __future__ import annotations

import json
import sys

from recbook.cli.flags import check_out_folder
from recbook.usage import UsageError


def cmd_train(args) -> dict:
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, got {args.max_steps}")
    if args.time_budget is not None and args.time_budget <= 0:
        raise UsageError(f"--time-budget must be positive seconds, got {args.time_budget}")
    from recbook.models import config_fields
    from recbook.runs.recipe import model_overrides

    model_overrides(args.model, args.seed, model_name_or_path=args.backbone, peft=args.peft, item_features=args.item_features)
    out = check_out_folder(args.out)

    from recbook.perf.device import environment_report, seed_everything
    from recbook.profile import get_profile
    from recbook.runs.recipe import check_backbone, fit_recommender, prepare_data, run_record, save_fitted, split_metrics

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
    item_features = getattr(fitted.model.config, "item_features", args.item_features)  # lmrec's default is hybrid
    run = run_record(args.data, args.model, profile, args.seed, ds, backbone=args.backbone, peft=args.peft, max_steps=args.max_steps,
                     item_features=item_features, split=args.split, cold_fraction=args.cold_fraction, all_users=args.all_users)
    save_fitted(fitted, out / "checkpoint", run)
    per_user: dict = {}
    metrics = split_metrics(fitted.model, ds, split, profile, args.seed, args.eval_users, per_user_out=per_user)
    reference = fitted.model.reference_model if args.compare is None else (None if args.compare == "none" else args.compare)
    if reference is not None:
        metrics["compared_to"] = _compare(reference, args, fitted.model, ds, split, train_split, profile, per_user)
    result = fitted.train_result
    losses = [row["loss"] for row in (getattr(result, "history", None) or []) if row.get("loss") is not None]
    tail = losses[-3:]  # the last logged losses, averaged: one logged step is noisy
    metrics.update(train_loss={"first": round(losses[0], 6), "last": round(sum(tail) / len(tail), 6)} if losses else None)
    metrics.update(data=args.data, model=args.model, item_features=item_features, split=args.split, peft=args.peft,
                   profile=profile.name, dataset_users=int(ds.n_users), train_seconds=round(fitted.train_seconds, 2),
                   steps=getattr(result, "steps", None), stop_reason=getattr(result, "stop_reason", None),
                   config=fitted.model.get_config(), environment=environment_report())
    if getattr(fitted.model, "text_loss_validation", None):  # lmrec: the text_loss weights tried and their validation NDCG@10
        metrics["text_loss_validation"] = {f"{w:g}": v for w, v in fitted.model.text_loss_validation.items()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    return metrics


def _compare(reference: str, args, model, ds, split, train_split, profile, per_user: dict) -> dict:
    """Fit ``reference`` on the same data, split, profile and seed (IDs only) and pair it with the trained model per user:
    its metrics and ``model - reference`` for NDCG@10 and HR@10 under every protocol both were scored with.

    When the trained model's config extends the reference's (lmrec's extends SASRec's), the reference is fitted by the
    same recipe: every field they share (sizes, epochs, patience, refit on train + valid …) but its item features."""
    from recbook.models import config_fields
    from recbook.perf.device import seed_everything
    from recbook.runs.recipe import fit_recommender, paired_metrics, split_metrics

    seed_everything(args.seed)
    backbone = args.backbone if "backbone" in config_fields(reference) else None
    ref = fit_recommender(reference, ds, train_split, profile, backbone, seed=args.seed, progress=not args.quiet,
                          **same_recipe(model, reference))
    ref_per_user: dict = {}
    protocols = [p for p in ("sampled", "full") if any(q == p for _, q in per_user) and (p == "sampled" or ref.model.full_ranking)]
    # the same users as the trained model (its subset when it is scored on one), so the two are paired user by user
    subset = args.eval_users if args.eval_users is not None else (None if model.full_ranking else profile.bert_eval_users)
    ref_metrics = split_metrics(ref.model, ds, split, profile, args.seed, subset, per_user_out=ref_per_user, protocols=tuple(protocols))
    return {"model": reference, "config": ref.model.get_config(), "train_seconds": round(ref.train_seconds, 2),
            "stop_reason": getattr(ref.train_result, "stop_reason", None), "metrics": ref_metrics,
            "paired": paired_metrics(per_user, ref_per_user, (args.model, reference), seed=args.seed)}


def same_recipe(model, reference: str) -> dict:
    """The config fields ``model`` passes on to a ``reference`` whose config class its own extends (everything but the
    item representation), so a paired difference measures what the model adds, not a different training recipe; ``{}``
    for an unrelated reference (e.g. EASE)."""
    from recbook.models import config_fields, model_class

    if not isinstance(model.config, model_class(reference).config_class):
        return {}
    names = config_fields(reference) - {"seed", "item_features", "text_encoder", "backbone"}
    # "auto" is a choice the model makes while fitting (lmrec's text_loss): a fitted model passes what it chose
    return {name: getattr(model.config, name) for name in sorted(names) if getattr(model.config, name) != "auto"}


def _run_profile(run: dict, override: str | None):
    """The profile stored in ``run.json``, unless ``--profile`` overrides it (with a one-line notice)."""
    from recbook.runs.recipe import run_profile, stored_profile_name

    if override is not None and run.get("profile") is not None:
        print(f"note: --profile {override} overrides the profile the checkpoint was trained with ({stored_profile_name(run)}, "
              "stored in run.json)", file=sys.stderr)
    return run_profile(run, override)


def cmd_evaluate(args) -> dict:
    from recbook.runs.recipe import check_catalogue, checkpoint_folder, load_trained, prepare_data, split_metrics

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


