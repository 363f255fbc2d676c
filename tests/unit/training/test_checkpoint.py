import random

import numpy as np
import pytest
import torch

from recbook.training.checkpoint import RunState, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def draws(generator):
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(1).tolist(), random.random(), random.gauss(0, 1),
            torch.rand(2, generator=generator).tolist())


def test_rng_state_round_trip_covers_every_generator():
    g = torch.Generator().manual_seed(1)
    np.random.randn(1)  # leave a cached Gaussian in NumPy's state ...
    random.gauss(0, 1)  # ... and in Python's
    saved = rng_state([g])
    assert all(isinstance(v, torch.Tensor) for v in saved.values())  # safetensors-ready, no pickle
    expected = draws(g)
    set_rng_state(saved, [g])
    assert draws(g) == expected


def test_checkpoint_holds_scaler_best_weights_and_rng_in_safetensors_and_json(tmp_path):
    model, best = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    scaler.load_state_dict({**scaler.state_dict(), "_growth_tracker": 2})
    torch.manual_seed(7)
    save_checkpoint(tmp_path / "c", model, state={"step": 3}, scaler=scaler, best_weights=best.state_dict())
    expected = torch.rand(2)
    assert sorted(p.suffix for p in (tmp_path / "c").iterdir()) == [".json", ".safetensors", ".safetensors", ".safetensors"]
    other = torch.amp.GradScaler("cpu")
    state = load_checkpoint(tmp_path / "c", torch.nn.Linear(3, 1), scaler=other)
    assert other.state_dict() == scaler.state_dict() and torch.equal(torch.rand(2), expected)  # RNG restored too
    torch.testing.assert_close(state.pop("best_weights")["weight"], best.weight, atol=0, rtol=0)
    assert state == {"step": 3}


def test_resuming_mid_epoch_needs_the_same_batches(tmp_path):
    model = torch.nn.Linear(2, 1)
    run = RunState(model, None, None, None, result=None, config=None)
    run.epoch, run.micro, run._resume_rng = 0, 5, {}
    with pytest.raises(ValueError, match="micro-batch 5"):
        next(run.batches([1, 2, 3], 0))
