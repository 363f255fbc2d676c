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
(:mod:`recbook.compress.bench`) or, with ``--target catalogue``, of the BERT that embeds the catalogue, judged by a text SASRec on
every user with paired CIs (:mod:`recbook.compress.catalogue`), and writes ``bench.csv``, ``bench.md`` and a Pareto figure. ``--data`` is ``synthetic``, ``movielens-100k`` or a folder in the
``recbook.data.load_folder`` format. ``export`` writes a serving bundle (:mod:`recbook.serve.bundle`: a versioned
folder, every file listed with its sha256 in ``manifest.json``); ``serve`` runs the recommendation service on it with
uvicorn (:mod:`recbook.serve.app`; API keys from ``RECBOOK_API_KEYS``, loopback only unless ``--allow-remote``);
``loadtest`` offers an open-loop Poisson load to a local service and prints latency percentiles
(:mod:`recbook.serve.loadtest`). ``update`` updates a saved sasrec with newer interactions by one strategy
(:func:`recbook.cli.update.update_run`) and writes a new versioned checkpoint and serving bundle. Bad arguments print a clear message and exit with code 2.

This module only parses arguments, calls the library (:mod:`recbook.runs.recipe`, :mod:`recbook.compress.bench`,
:mod:`recbook.compress`) and prints; its imports are light (``--help`` loads neither torch nor the
compression code), the heavy modules load inside each command.
"""


import argparse
import json
import sys

from recbook.cli.bench import cmd_bench
from recbook.cli.export import cmd_export
from recbook.cli.flags import flag_error
from recbook.cli.serve import cmd_loadtest, cmd_serve
from recbook.cli.train import cmd_evaluate, cmd_train
from recbook.cli.update import cmd_update
from recbook.compress.request_variants import VARIANTS as REQUEST_VARIANTS
from recbook.compress.variants import VARIANT_KINDS
from recbook.errors import ConfigError, DataError
from recbook.models import MODEL_NAMES
from recbook.profile import PROFILES
from recbook.usage import DATA_HELP, SPLITS, UsageError

PROFILE_NAMES = tuple(PROFILES)


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
    tr.add_argument("--compare", default=None, choices=(*MODEL_NAMES, "none"),
                    help="also fit this model on the same split and write the paired difference (model - it) into metrics.json "
                         "(default: the model's reference, e.g. sasrec for lmrec; none: skip)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    ev = sub.add_parser("evaluate", help="re-evaluate a saved model")
    ev.add_argument("--checkpoint", required=True, help="the --out folder of a train run (or its checkpoint/ folder)")
    ev.add_argument("--data", default=None, help=f"{DATA_HELP}; default: the data it was trained on")
    ev.add_argument("--profile", choices=PROFILE_NAMES, default=None, help="default: the profile stored in run.json")
    ev.add_argument("--eval-users", type=int, default=None, help="as for train")
    be = sub.add_parser("bench", help="measure compressed variants (quality, latency, size) of a cross-encoder checkpoint "
                                      "or of the BERT that embeds the catalogue")
    be.add_argument("--target", choices=("checkpoint", "catalogue", "request"), default="checkpoint",
                    help="checkpoint: a cross-encoder from 'recbook train' (sampled protocol on --eval-users); catalogue: the "
                         "sentence encoder of a text SASRec, judged on every user with paired CIs (notebooks 11-14); request: "
                         "what runs per request (the user encoder and item table of a sasrec/bert4rec/lmrec run, --model), full "
                         "ranking on every test user and CPU ms per request -> OUT/request_bench.json")
    be.add_argument("--model", default=None, help="--target request: the --out folder of 'recbook train --model lmrec' (or sasrec, bert4rec)")
    be.add_argument("--margin", type=float, default=0.005,
                    help="--target request: non-inferiority margin on NDCG@10, fixed before measuring (default 0.005)")
    be.add_argument("--requests", type=int, default=200, help="--target request: timed requests per round (default 200)")
    be.add_argument("--checkpoint", default=None, help="--target checkpoint: the --out folder of 'recbook train --model cross-encoder'")
    be.add_argument("--data", default=None, help="--target catalogue: " + DATA_HELP + " (default movielens-100k)")
    be.add_argument("--seed", type=int, default=0, help="--target catalogue: seed of the split and the recommender")
    be.add_argument("--backbone", default=None, help="--target catalogue: the sentence encoder (default: offline all-MiniLM-L6-v2)")
    be.add_argument("--epochs", type=int, default=40, help="--target catalogue: most epochs for the recommender (early stopping)")
    be.add_argument("--variants", default=None, help="comma-separated; checkpoint/catalogue (default fp32,int8,onnx-int8,prune50-int8): "
                    + ", ".join(VARIANT_KINDS) + "; request (default all of " + ", ".join(REQUEST_VARIANTS)
                    + "): ENCODER[-lastN][+table-int8|+table-int4]; a student/mlp-student encoder is distilled from the run "
                    "first (about a minute each on a 2-core CPU for MovieLens)")
    be.add_argument("--out", required=True, help="output folder for bench.csv, bench.md, bench_pareto.png")
    be.add_argument("--profile", choices=PROFILE_NAMES, default=None, help="default: the profile stored in run.json")
    be.add_argument("--eval-users", type=int, default=None, help="test users whose 100 candidates are scored (default: the profile's)")
    be.add_argument("--repeats", type=int, default=10, help="timed repeats per variant and batch size (interleaved)")
    be.add_argument("--threads", type=int, default=None, help="torch/ONNX Runtime threads (default: torch's)")
    be.add_argument("--quiet", action="store_true")
    ex = sub.add_parser("export", help="write a serving bundle (versioned, sha256-verified folder) from a sasrec run and an optional cross-encoder run")
    ex.add_argument("--retriever", required=True, help="the --out folder of 'recbook train --model sasrec' (or lmrec, bert4rec)")
    ex.add_argument("--reranker", default=None, help="the --out folder of 'recbook train --model cross-encoder' (exported as int8 ONNX)")
    ex.add_argument("--out", required=True, help="the bundle folder to create (must not exist or be empty: a version is written once)")
    ex.add_argument("--version", default=None, help="version name (default: UTC time stamp + content hash)")
    ex.add_argument("--parent", default=None, help="the version this one replaces (recorded in manifest.json)")
    ex.add_argument("--request-variant", default=None, help="serve a compressed request path (a 'bench --target request' variant, "
                    "e.g. onnx-int8+table-int8 or mlp-student-int8-last10); default: the retriever in PyTorch fp32")
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
    se.add_argument("--rerank-chunk", type=int, default=20, help="pairs a request hands the re-ranker at a time, so a heavy request "
                    "cannot hold light ones for longer than one chunk (default 20; 0 = whole requests)")
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
    except DataError as exc:  # the data cannot support the run (e.g. too few items for the evaluation's negatives)
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if metrics is None:  # serve and loadtest print their own output
        return 0
    shown = {k: v for k, v in metrics.items() if k != "environment"}
    print(json.dumps(shown, indent=1, default=str))
    return 0
