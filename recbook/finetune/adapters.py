"""Bottleneck adapters (Houlsby et al., 2019), written out by hand.

Taught in notebook ``10_peft``.

An adapter is a tiny two-layer network with a skip connection::

    adapter(h) = h + W_up · f(W_down · h + b_down) + b_up        W_down: m × d,  W_up: d × m,  m ≪ d

Houlsby et al. insert one after the attention block's output projection and one after the feed-forward
block's output projection of every transformer layer — after the projection (and its dropout), *before*
the residual connection and LayerNorm. The pretrained weights stay frozen; the adapters, the LayerNorms
and (here) the cross-encoder's new head are trained.

``W_up`` starts at zero, so every adapter starts as the identity and the adapted model computes exactly
what the pretrained model did: training starts from the pretrained function, as with LoRA's ``B = 0``.
Unlike LoRA, an adapter is non-linear and cannot be merged into the weights: it costs a little at
inference too (two small matrix products per sub-layer).
"""

from __future__ import annotations

import torch


class BottleneckAdapter(torch.nn.Module):
    """``h + up(f(down(h)))``: project ``hidden`` → ``bottleneck`` → ``hidden`` with a residual; ``up`` starts at zero."""

    def __init__(self, hidden: int, bottleneck: int, activation: str = "gelu"):
        super().__init__()
        if bottleneck < 1 or hidden < 1:
            raise ValueError(f"hidden and bottleneck sizes must be positive, got hidden={hidden}, bottleneck={bottleneck}")
        activations = {"gelu": torch.nn.GELU, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
        if activation not in activations:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(activations)}")
        self.down = torch.nn.Linear(hidden, bottleneck)  # PyTorch's default (Kaiming-uniform) initialisation
        self.act = activations[activation]()
        self.up = torch.nn.Linear(bottleneck, hidden)
        torch.nn.init.zeros_(self.up.weight)  # the adapter starts as the identity
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


class AdaptedOutput(torch.nn.Module):
    """A BERT sub-layer output (``BertSelfOutput`` or ``BertOutput``) with an adapter in Houlsby's place.

    It reuses the original ``dense``, ``dropout`` and ``LayerNorm`` modules (same names, so the pretrained
    weights keep their names) and adds ``adapter`` between the dropout and the residual + LayerNorm.
    """

    def __init__(self, output: torch.nn.Module, adapter: BottleneckAdapter):
        super().__init__()
        self.dense, self.dropout, self.LayerNorm = output.dense, output.dropout, output.LayerNorm
        self.adapter = adapter

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.dense(hidden_states))  # the pretrained projection, as before
        h = self.adapter(h)  # the only new computation
        return self.LayerNorm(h + input_tensor)  # residual + LayerNorm, as before


def _bert_layers(encoder) -> list:
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None:
        raise TypeError(f"{type(encoder).__name__} is not a BERT-style encoder: it has no .encoder.layer list of transformer layers")
    for i, layer in enumerate(layers):
        for where, output in (("attention.output", getattr(getattr(layer, "attention", None), "output", None)),
                              ("output", getattr(layer, "output", None))):
            missing = [a for a in ("dense", "dropout", "LayerNorm") if not hasattr(output, a)]
            if output is None or missing:
                raise TypeError(f"layer {i} has no BERT-style {where} (dense, dropout, LayerNorm); cannot place adapters")
            if isinstance(output, AdaptedOutput):
                raise ValueError(f"layer {i} already has adapters; add them once")
    return list(layers)


def add_adapters(model, bottleneck: int = 16, activation: str = "gelu", train_layer_norms: bool = True):
    """Insert a :class:`BottleneckAdapter` after the attention output and after the feed-forward output of every
    layer of ``model.encoder`` (a BERT), in place; return ``model``.

    The encoder's pretrained weights are frozen; the adapters and (with ``train_layer_norms``, as Houlsby et al.
    did) every LayerNorm of the encoder are trained. Parameters outside ``model.encoder`` — a cross-encoder's
    head — are left as they are (trainable).
    """
    if not hasattr(model, "encoder"):
        raise TypeError(f"{type(model).__name__} has no .encoder to adapt")
    encoder = model.encoder
    layers = _bert_layers(encoder)
    hidden = encoder.config.hidden_size
    for p in encoder.parameters():
        p.requires_grad_(False)
    if train_layer_norms:
        for module in encoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                for p in module.parameters():
                    p.requires_grad_(True)
    for layer in layers:
        layer.attention.output = AdaptedOutput(layer.attention.output, BottleneckAdapter(hidden, bottleneck, activation))
        layer.output = AdaptedOutput(layer.output, BottleneckAdapter(hidden, bottleneck, activation))
    return model


def adapter_parameter_count(hidden: int, bottleneck: int, layers: int, layer_norms: int | None = None) -> int:
    """Trainable parameters :func:`add_adapters` adds to (or unfreezes in) a BERT encoder.

    Each adapter has ``2·d·m + d + m`` parameters (two weight matrices and their biases); there are two per layer.
    ``layer_norms`` LayerNorms of ``2·d`` parameters each are trained too — a BERT has ``2·layers + 1``
    (one after the embeddings, two per layer), the default; pass 0 when they are not trained.
    """
    if layer_norms is None:
        layer_norms = 2 * layers + 1
    return layers * 2 * (2 * hidden * bottleneck + hidden + bottleneck) + layer_norms * 2 * hidden
