"""Pruning: unstructured magnitude pruning and structured removal of heads, FFN neurons and layers.

Taught in notebook ``11_pruning``.

- **Unstructured** (:func:`magnitude_prune`): zero the smallest-magnitude weights — globally (one
  threshold over all layers: layers with many small weights lose more) or per layer (each loses the
  same fraction). Built on ``torch.nn.utils.prune``. The matrices keep their shapes, so dense kernels
  do exactly the same work: the file shrinks (:mod:`recbook.compress.storage` stores a bit mask and
  the non-zeros) but inference does not get faster.
- **Structured** (:func:`prune_heads`, :func:`prune_ffn_neurons`, :func:`drop_layers`): remove whole
  attention heads, feed-forward neurons or encoder layers. Matrices really get smaller, so both the
  file and the latency shrink — at a larger cost in quality per removed weight.
- :func:`iterative_prune`: prune a little, fine-tune, prune more — quality recovers between rounds.

Every function returns a *new* model (a deep copy) unless it says otherwise.
"""

from __future__ import annotations

import copy
from typing import Callable

import pandas as pd
import torch
from torch.nn.utils import prune as torch_prune


def prunable_weights(model: torch.nn.Module, include_embeddings: bool = False, skip: tuple[str, ...] = ("head",)) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` of every ``nn.Linear`` (and, optionally, the word-embedding table) to prune.

    Modules whose name starts with one in ``skip`` (the cross-encoder's 1-output head) are left out.
    """
    found = []
    for name, module in model.named_modules():
        if name.startswith(skip):
            continue
        if isinstance(module, torch.nn.Linear) or (include_embeddings and isinstance(module, torch.nn.Embedding) and name.endswith("word_embeddings")):
            found.append((name, module))
    if not found:
        raise ValueError(f"{type(model).__name__} has no Linear layers to prune")
    return found


def magnitude_prune(model: torch.nn.Module, amount: float, scope: str = "global", include_embeddings: bool = False,
                    permanent: bool = True) -> torch.nn.Module:
    """A copy of ``model`` with the fraction ``amount`` of its prunable weights set to zero, smallest |w| first.

    ``scope="global"`` ranks all prunable weights together (``prune.global_unstructured``);
    ``scope="layer"`` removes ``amount`` of each layer (``prune.l1_unstructured``). With
    ``permanent=False`` the masks stay attached (``weight = weight_orig * weight_mask``), so
    fine-tuning keeps the pruned weights at zero; :func:`make_permanent` removes them.
    """
    model = copy.deepcopy(model)
    _prune_in_place(model, amount, scope, include_embeddings)
    return make_permanent(model) if permanent else model


def _prune_in_place(model, amount: float, scope: str, include_embeddings: bool) -> None:
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    params = [(module, "weight") for _, module in prunable_weights(model, include_embeddings)]
    if scope == "global":
        torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured, amount=amount)
    else:
        for module, name in params:
            torch_prune.l1_unstructured(module, name, amount=amount)


def make_permanent(model: torch.nn.Module) -> torch.nn.Module:
    """Fold pruning masks into the weights (``prune.remove``), in place; returns the model."""
    for module in model.modules():
        if torch_prune.is_pruned(module) and hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")
    return model


def sparsity_report(model: torch.nn.Module, include_embeddings: bool = True) -> pd.DataFrame:
    """One row per prunable layer: parameters, zeros and sparsity, plus a ``total`` row."""
    rows = []
    for name, module in prunable_weights(model, include_embeddings):
        w = module.weight.detach()
        rows.append({"layer": name, "params": w.numel(), "zeros": int((w == 0).sum()), "shape": tuple(w.shape)})
    frame = pd.DataFrame(rows)
    total = {"layer": "total", "params": int(frame["params"].sum()), "zeros": int(frame["zeros"].sum()), "shape": ""}
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    frame["sparsity"] = (frame["zeros"] / frame["params"]).round(4)
    return frame.set_index("layer")


def iterative_prune(model: torch.nn.Module, targets, fine_tune: Callable[[torch.nn.Module], None] | None = None,
                    scope: str = "global", include_embeddings: bool = False, evaluate: Callable[[torch.nn.Module], float] | None = None):
    """Prune towards each sparsity in ``targets`` (increasing), calling ``fine_tune(model)`` after each step.

    Masks stay attached while fine-tuning, so pruned weights stay zero. Returns ``(model, history)``
    with one ``{"sparsity", "metric"}`` row per round (``metric`` from ``evaluate`` if given).
    """
    targets = list(targets)
    if not targets or any(b <= a for a, b in zip(targets, targets[1:])):
        raise ValueError(f"targets must be a non-empty increasing list of sparsities, got {targets}")
    model, done, history = copy.deepcopy(model), 0.0, []
    for target in targets:
        # torch's pruning containers prune a fraction of what is still unpruned: convert cumulative → step
        _prune_in_place(model, (target - done) / (1.0 - done), scope, include_embeddings)
        done = target
        if fine_tune is not None:
            fine_tune(model)
        history.append({"sparsity": target, "metric": evaluate(model) if evaluate else None})
    return make_permanent(model), history


# ----------------------------------------------------------------------------- structured pruning
def _encoder_layers(model: torch.nn.Module):
    for module in model.modules():
        if hasattr(module, "layer") and isinstance(module.layer, torch.nn.ModuleList):
            return module.layer
    raise ValueError(f"{type(model).__name__} has no encoder.layer list (expected a BERT-style encoder)")


def _bert_config(model: torch.nn.Module):
    for module in model.modules():
        if hasattr(module, "config") and hasattr(module.config, "num_hidden_layers"):
            return module.config
    raise ValueError(f"{type(model).__name__} has no BERT config")


def head_importance(model: torch.nn.Module) -> torch.Tensor:
    """(layers, heads) importance: the norm of each head's query/key/value rows and output columns."""
    scores = []
    for layer in _encoder_layers(model):
        att = layer.attention.self
        d = att.attention_head_size
        heads = att.query.out_features // d
        per_head = []
        for h in range(heads):
            rows = slice(h * d, (h + 1) * d)
            parts = [att.query.weight[rows], att.key.weight[rows], att.value.weight[rows], layer.attention.output.dense.weight[:, rows].T]
            per_head.append(torch.sqrt(sum(p.detach().float().pow(2).sum() for p in parts)))
        scores.append(torch.stack(per_head))
    return torch.nn.utils.rnn.pad_sequence(scores, batch_first=True)


def _keep_rows(linear: torch.nn.Linear, index: torch.Tensor, dim: int) -> torch.nn.Linear:
    """A smaller Linear keeping ``index`` along ``dim`` of the weight (0 = outputs, 1 = inputs)."""
    weight = linear.weight.detach().index_select(dim, index).clone()
    new = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None).to(weight.device, weight.dtype)
    new.weight.data.copy_(weight)
    if linear.bias is not None:
        new.bias.data.copy_(linear.bias.detach()[index] if dim == 0 else linear.bias.detach())
    return new


def prune_heads(model: torch.nn.Module, fraction: float, importance: torch.Tensor | None = None) -> torch.nn.Module:
    """A copy of ``model`` without the ``fraction`` least important attention heads (ranked globally;
    every layer keeps at least one). Query/key/value lose the heads' rows, the output projection their columns."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    model = copy.deepcopy(model)
    scores = head_importance(model) if importance is None else importance
    layers = _encoder_layers(model)
    n_remove = int(round(fraction * sum(layer.attention.self.query.out_features // layer.attention.self.attention_head_size for layer in layers)))
    order = sorted(((float(scores[i, h]), i, h) for i, layer in enumerate(layers)
                    for h in range(layer.attention.self.query.out_features // layer.attention.self.attention_head_size)))
    removed: dict[int, set] = {}
    for _, i, h in order:
        if n_remove == 0:
            break
        heads = layers[i].attention.self.query.out_features // layers[i].attention.self.attention_head_size
        if heads - len(removed.get(i, ())) > 1:
            removed.setdefault(i, set()).add(h)
            n_remove -= 1
    for i, heads_out in removed.items():
        att, out = layers[i].attention.self, layers[i].attention.output
        d = att.attention_head_size
        heads = att.query.out_features // d
        keep = torch.tensor([h * d + j for h in range(heads) if h not in heads_out for j in range(d)])
        att.query, att.key, att.value = (_keep_rows(m, keep, 0) for m in (att.query, att.key, att.value))
        out.dense = _keep_rows(out.dense, keep, 1)
        att.num_attention_heads = heads - len(heads_out)
        att.all_head_size = att.num_attention_heads * d
    return model


def prune_ffn_neurons(model: torch.nn.Module, fraction: float) -> torch.nn.Module:
    """A copy of ``model`` whose feed-forward blocks lose the ``fraction`` of neurons with the smallest
    ``‖input row‖·‖output column‖`` (per layer): ``intermediate.dense`` and ``output.dense`` shrink."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    model = copy.deepcopy(model)
    for layer in _encoder_layers(model):
        up, down = layer.intermediate.dense, layer.output.dense
        score = up.weight.detach().norm(dim=1) * down.weight.detach().norm(dim=0)
        n_keep = max(1, up.out_features - int(round(fraction * up.out_features)))
        keep = torch.sort(torch.topk(score, n_keep).indices).values
        layer.intermediate.dense = _keep_rows(up, keep, 0)
        layer.output.dense = _keep_rows(down, keep, 1)
    return model


def drop_layers(model: torch.nn.Module, keep) -> torch.nn.Module:
    """A copy of ``model`` keeping only encoder layers ``keep`` (indices, in order); the config follows."""
    keep = list(keep)
    model = copy.deepcopy(model)
    layers = _encoder_layers(model)
    if not keep or sorted(set(keep)) != keep or keep[0] < 0 or keep[-1] >= len(layers):
        raise ValueError(f"keep must be increasing layer indices in [0, {len(layers)}), got {keep}")
    kept = torch.nn.ModuleList(layers[i] for i in keep)
    for new_index, layer in enumerate(kept):  # attention modules remember their index (caches)
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    for module in model.modules():
        if hasattr(module, "layer") and module.layer is layers:
            module.layer = kept
    _bert_config(model).num_hidden_layers = len(keep)
    return model


def count_nonzero(model: torch.nn.Module) -> tuple[int, int]:
    """(non-zero, total) parameters of ``model``."""
    nonzero = total = 0
    for p in model.parameters():
        nonzero += int((p != 0).sum())
        total += p.numel()
    return nonzero, total
