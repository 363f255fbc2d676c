"""The course's GPU paths in one short run (not yet timed on a GPU); prints one line per check and exits 1 if any fails.

    python tools/gpu_check.py [--out gpu_check.json]

Checks, on ``cuda:0``: the environment; bf16 and fp16 autocast forward (speed and logit error vs fp32);
a few fp16 training steps with a GradScaler; ``torch.compile`` (first call and steady-state speed-up);
eager vs SDPA attention; one full-profile-sized fine-tuning throughput figure (steps/s at batch 64, 256
tokens); and a 1-GPU DDP run through ``torchrun`` with the nccl backend. Prints one line per check (``ok`` or
``FAILED: reason``) and then the JSON report; exits 1 if any check failed, 0 when all passed, and 0 with
``{"status": "skipped"}`` when no CUDA GPU is present, so it is safe to run anywhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def run_checks(checks: dict) -> tuple[dict, list[str]]:
    """Run each ``name: callable`` in turn; ``(report, failed names)``. A check fails when it raises or returns a dict
    with ``"ok": False``; the others still run. Prints one line per check as it finishes."""
    report, failed = {}, []
    for name, check in checks.items():
        start = time.perf_counter()
        try:
            result = check()
            ok = not (isinstance(result, dict) and result.get("ok") is False)
            report[name] = result
            why = "" if ok else f": {result.get('why', 'the check says it failed')}"
        except Exception as exc:  # one broken path must not hide the others
            ok, why = False, f": {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if not ok:
            failed.append(name)
        print(f"{name:22s} {'ok' if ok else 'FAILED' + why} ({time.perf_counter() - start:.1f} s)", flush=True)
    return report, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"status": "skipped", "reason": "no CUDA GPU visible"}))
        return 0
    from transformers import AutoModel

    from recbook.data import PairCollator, leave_last_out, make_synthetic
    from recbook.models.backbone import load_tokenizer, resolve_model_path
    from recbook.models.cross_encoder import CrossEncoder, cross_encoder_examples
    from recbook.perf import accel
    from recbook.perf.device import environment_report
    from recbook.profile import get_profile

    report: dict = {"environment": environment_report("cuda")}
    started = time.perf_counter()
    profile = get_profile("full")
    data = make_synthetic(seed=0, n_users=400, n_items=300)
    tok = load_tokenizer(None)
    examples = cross_encoder_examples(data, leave_last_out(data.interactions), tok, profile, 0, examples=1024)
    collate = PairCollator(tok)
    keep = ["input_ids", "attention_mask", "token_type_ids", "label"]
    batch = collate([{k: examples[k][i] for k in keep} for i in range(64)])
    model = CrossEncoder(AutoModel.from_pretrained(resolve_model_path(None)))
    small = [collate([{k: examples[k][i] for k in keep} for i in range(j * 16, j * 16 + 16)]) for j in range(6)]

    from recbook.training.loop import TrainConfig, train_model

    def train_batch64():
        loader = torch.utils.data.DataLoader(examples.select_columns(keep), batch_size=64, shuffle=True, collate_fn=collate)
        fresh = CrossEncoder(AutoModel.from_pretrained(resolve_model_path(None)))
        result = train_model(fresh, loader, TrainConfig(max_steps=12, lr=5e-5, amp="auto", device="cuda", progress=False))
        return {"steps": result.steps, "seconds": result.seconds, "examples_per_s": result.examples / result.seconds}

    def ddp_1gpu():
        ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
                              "recbook.cli.distributed_train", "--data", "synthetic", "--profile", "quick", "--max-steps", "20",
                              "--eval-users", "20"], capture_output=True, text=True, timeout=300)
        return {"ok": ddp.returncode == 0, "why": f"torchrun exited with {ddp.returncode}: {ddp.stderr.strip()[-300:]}",
                "returncode": ddp.returncode, "stdout_tail": ddp.stdout[-1500:], "stderr_tail": ddp.stderr[-800:] if ddp.returncode else ""}

    checks = {
        "precision": lambda: accel.precision_report(model, batch, "cuda").astype(str).to_dict(),
        "fp16_grad_scaler": lambda: accel.fp16_grad_scaler_steps(model, small, "cuda"),
        "compile": lambda: accel.compile_report(model, batch, "cuda"),
        "attention": lambda: accel.attention_report(None, batch, "cuda").astype(str).to_dict(),
        "profile_top_ops": lambda: accel.profile_step(model, {**small[0]}, "cuda", top=8).astype(str).to_dict("records"),
        "train_batch64": train_batch64,
        "ddp_1gpu": ddp_1gpu,
    }
    results, failed = run_checks(checks)
    report.update(results)
    report["status"] = "failed: " + ", ".join(failed) if failed else "ok"
    report["seconds"] = time.perf_counter() - started
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
