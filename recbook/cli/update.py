"""``python -m recbook update``: update a saved SASRec with newer interactions by one strategy of
:mod:`recbook.continual.strategies`, and write a new versioned checkpoint and serving bundle.

The strategies, their cost and their measurement are the library's (:mod:`recbook.continual.strategies`); this module is the
command: it reads the run, checks the arguments (errors name the flag), and writes the new version's files.
"""

from __future__ import annotations

import time

from recbook.cli.flags import check_out_folder
from recbook.usage import UsageError


def cmd_update(args) -> dict:
    from recbook.continual.strategies import UpdateConfig

    if args.epochs < 1 or args.replay_size < 0 or args.ewc_lambda < 0:
        raise UsageError("--epochs must be at least 1, --replay-size and --ewc-lambda non-negative")
    config = UpdateConfig(epochs=args.epochs, replay_size=args.replay_size, ewc_lambda=args.ewc_lambda, seed=args.seed)
    return update_run(args.model, args.data, args.until, args.strategy, args.out, since=args.since, config=config,
                      version=args.version)




def parse_time(value, name: str) -> int:
    """Unix seconds from an int, a digit string or a date/time string ("1998-03-01", "1998-03-01T12:00");
    :class:`recbook.usage.UsageError` naming the option otherwise."""
    import numpy as np
    import pandas as pd


    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise UsageError(f"{name} {value!r}: expected a date such as 1998-03-01 (UTC) or Unix seconds") from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.timestamp())


def update_run(model_dir, data: str, until, strategy: str, out, since=None, config=None,
               version: str | None = None) -> dict:
    """Update a saved SASRec with the interactions in ``[since, until)`` by ``strategy`` and write ``out``:

    - ``out/checkpoint/`` — the model (safetensors) and ``run.json`` in the format of ``recbook train`` (so
      ``recbook evaluate --checkpoint out`` and ``recbook export`` read it), with ``version``, ``parent`` (the
      input's folder and version), ``strategy``, ``data_window`` and ``data_until`` (the next update's ``since``);
    - ``out/bundle/`` — a serving bundle (:func:`recbook.serve.export.write_bundle`; manifest with the parent
      version and the data window; ``drift.json`` with the new data's drift, :func:`update_drift`) that a running
      service hot-swaps to with ``POST /admin/reload``;
    - ``out/update.json`` — what was done and what it cost.

    ``since`` defaults to the input's ``data_until`` (recorded by a previous ``update``); a model from ``recbook train``
    records none, so the first update needs ``since``. Errors are :class:`recbook.usage.UsageError` naming the option.
    """
    import dataclasses
    import json
    from pathlib import Path

    import pandas as pd

    from recbook.continual.strategies import STRATEGIES, UpdateConfig, start_state, update
    from recbook.continual.stream import Stream
    from recbook.models import SEQUENTIAL_MODELS
    from recbook.runs.recipe import catalogue_fingerprint, check_catalogue, checkpoint_folder, load_data_source, run_profile
    from recbook.serve.bundle import sha256_of
    from recbook.serve.export import write_bundle

    if strategy not in STRATEGIES or strategy == "lora_continue":
        raise UsageError(f"--strategy {strategy!r}: choose one of {', '.join(s for s in STRATEGIES if s != 'lora_continue')} "
                         "(lora_continue needs the previous update's adapter, which a version does not store)")
    out = check_out_folder(out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {str(out)!r} exists and is not empty; an update writes a new version into a new folder")
    folder, run = checkpoint_folder(model_dir)
    if run.get("model") not in SEQUENTIAL_MODELS or not (folder / "config.json").is_file():
        raise UsageError(f"--model {str(model_dir)!r} holds a {run.get('model')} model; updates apply to a sasrec model "
                         "(python -m recbook train --model sasrec, or an earlier update)")
    from recbook.models.sasrec import SASRec

    model = SASRec.from_pretrained(folder).network if run.get("model") == "sasrec" else None
    if model is None:
        raise UsageError(f"--model {str(model_dir)!r} holds a {run.get('model')} model; updates are implemented for sasrec "
                         "(python -m recbook train --model sasrec)")
    profile = run_profile(run)
    ds = load_data_source(data, profile, run.get("seed", 0), all_users=True)
    check_catalogue(run, ds, data)
    until_s = parse_time(until, "--until")
    if since is None and run.get("data_until") is None:
        raise UsageError(f"--model {str(model_dir)!r} does not record which data it saw (no data_until in run.json: it comes "
                         "from 'recbook train'); pass --since DATE, the start of the new data")
    since_s = parse_time(since, "--since") if since is not None else int(run["data_until"])
    if since_s >= until_s:
        raise UsageError(f"--since ({since_s}) must be before --until ({until_s})")
    t = ds.interactions["timestamp"]
    known = ds.interactions[t < until_s]
    n_new = int(((t >= since_s) & (t < until_s)).sum())
    if n_new == 0:
        first, last = pd.to_datetime([int(t.min()), int(t.max())], unit="s")
        raise UsageError(f"no interactions of --data {data!r} fall in [--since, --until); its data runs from {first.date()} "
                         f"to {last.date()}")
    config = config or UpdateConfig(seed=run.get("seed", 0))
    stream = Stream.from_interactions(known, ds.item_ids)
    state = start_state(strategy, model, stream, since_s, config)
    cost = update(strategy, state, stream, since_s, until_s, config)
    window = {"since": since_s, "until": until_s, "since_utc": str(pd.to_datetime(since_s, unit="s")),
              "until_utc": str(pd.to_datetime(until_s, unit="s")), "interactions": n_new}
    # a `recbook train` run has no version: name it by its weights' hash so the new version's parent is still traceable
    parent_version = run.get("version") or f"train-{sha256_of(folder / 'model.safetensors')[:12]}"
    version = version or f"{strategy}-{pd.to_datetime(until_s, unit='s'):%Y%m%d}-{int(time.time())}"
    new_run = {**run, "data": data, "all_users": True, "version": version,
               "parent": {"folder": str(Path(folder).resolve()), "version": parent_version},
               "strategy": strategy, "data_window": window, "data_until": until_s,
               "update_config": dataclasses.asdict(config), "catalogue": catalogue_fingerprint(ds)}
    checkpoint = out / "checkpoint"
    SASRec.from_network(state.model, ds.item_ids).save_pretrained(checkpoint)
    (checkpoint / "run.json").write_text(json.dumps(new_run, indent=1, default=str))

    source = {"retriever_run": str(out.resolve()), "retriever_model": run["model"], "data": data, "strategy": strategy,
              "data_window": window}
    drift = update_drift(ds, since_s, until_s)
    write_bundle(out / "bundle", state.model, ds, known, version=version, parent=parent_version, source=source, drift=drift)
    summary = {"out": str(out), "version": version, "parent": parent_version, "strategy": strategy, "data_window": window, "drift": drift,
               "cpu_s": round(cost["cpu_s"], 2), "wall_s": round(cost["wall_s"], 2), "examples": cost["examples"],
               "bundle": str(out / "bundle")}
    (out / "update.json").write_text(json.dumps(summary, indent=1))
    return summary


def update_drift(dataset, since: int, until: int) -> dict:
    """Drift of the new data ``[since, until)`` against everything before it (:func:`recbook.continual.drift.drift_report`,
    summarised by :func:`recbook.continual.drift_export.drift_summary` with the default detector): what ``update`` stores as the
    bundle's ``drift.json`` and the service exports as ``recbook_drift_psi`` / ``recbook_update_due``."""
    from recbook.continual.drift import drift_report
    from recbook.continual.drift_export import drift_summary
    from recbook.data.splits import temporal_windows

    before = dataset.interactions[dataset.interactions["timestamp"] < until]
    windows = temporal_windows(before, bounds=[since, until])
    return drift_summary(drift_report(windows, dataset.items).loc[1])
