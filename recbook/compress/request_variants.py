"""The names of the request-path variants (:mod:`recbook.compress.request`), kept apart from the benchmark so that
``python -m recbook --help`` can list them without loading numpy or torch."""

from __future__ import annotations

VARIANTS = ("fp32", "onnx-fp32", "onnx-int8", "onnx-int4w", "table-int8", "table-int4", "onnx-int8+table-int8",
            "onnx-int4w+table-int4", "onnx-int8-last20+table-int8")
ENCODERS = ("fp32", "onnx-fp32", "onnx-int8", "onnx-int4w")
FP32_VARIANTS = ("fp32", "onnx-fp32")


def parse_variant(name: str) -> tuple[str, int | None, int]:
    """``"onnx-int8-last20+table-int8"`` → ``("onnx-int8", 20, 8)``: encoder, history window (None: the model's), table
    bits (32: fp32). A lone ``table-intB`` is the fp32 encoder with that table. ``ValueError`` names what is wrong."""
    parts = name.split("+")
    if len(parts) == 1 and parts[0].startswith("table-"):
        parts = ["fp32", parts[0]]
    if len(parts) > 2 or not parts[0]:
        raise ValueError(f"request variant {name!r}: write ENCODER[-lastN][+table-int8|+table-int4], e.g. onnx-int8-last20+table-int8")
    encoder, window = parts[0], None
    if "-last" in encoder:
        encoder, _, tail = encoder.rpartition("-last")
        if not tail.isdigit() or int(tail) < 1:
            raise ValueError(f"request variant {name!r}: -lastN needs a positive whole number of items, got {tail!r}")
        window = int(tail)
    if encoder not in ENCODERS:
        raise ValueError(f"request variant {name!r}: unknown encoder {encoder!r}; choose from {', '.join(ENCODERS)}")
    bits = 32
    if len(parts) == 2:
        if parts[1] not in ("table-int8", "table-int4"):
            raise ValueError(f"request variant {name!r}: unknown table {parts[1]!r}; choose table-int8 or table-int4")
        bits = int(parts[1].removeprefix("table-int"))
    return encoder, window, bits
