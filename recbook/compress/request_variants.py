"""The names of the request-path variants (:mod:`recbook.compress.request`), kept apart from the benchmark so that
``python -m recbook --help`` can list them without loading numpy or torch."""

from __future__ import annotations

VARIANTS = ("fp32", "onnx-fp32", "onnx-int8", "onnx-int4w", "table-int8", "table-int4", "onnx-int8+table-int8",
            "onnx-int4w+table-int4", "onnx-int8-last20+table-int8", "student-last20", "student-int8-last20+table-int8",
            "mlp-student-last10", "mlp-student-int8-last10+table-int8")
# the teacher's own encoder, then encoders distilled from it (recbook.compress.student): a 1-block transformer and an MLP,
# each run by ONNX Runtime in fp32 or dynamic int8
TEACHER_ENCODERS = ("fp32", "onnx-fp32", "onnx-int8", "onnx-int4w")
STUDENT_ENCODERS = {"student": ("transformer", 32), "student-int8": ("transformer", 8),
                    "mlp-student": ("mlp", 32), "mlp-student-int8": ("mlp", 8)}
ENCODERS = TEACHER_ENCODERS + tuple(STUDENT_ENCODERS)
FP32_VARIANTS = ("fp32", "onnx-fp32")
STUDENT_WINDOW = 20  # the last items a student reads when the variant names no -lastN


def parse_variant(name: str) -> tuple[str, int | None, int]:
    """``"onnx-int8-last20+table-int8"`` → ``("onnx-int8", 20, 8)``: encoder, history window (None: the model's), table
    bits (32: fp32). A lone ``table-intB`` is the fp32 encoder with that table; a student encoder without ``-lastN``
    reads the last :data:`STUDENT_WINDOW` items (it is distilled for that window). ``ValueError`` names what is wrong."""
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
    if encoder in STUDENT_ENCODERS and window is None:
        window = STUDENT_WINDOW
    bits = 32
    if len(parts) == 2:
        if parts[1] not in ("table-int8", "table-int4"):
            raise ValueError(f"request variant {name!r}: unknown table {parts[1]!r}; choose table-int8 or table-int4")
        bits = int(parts[1].removeprefix("table-int"))
    return encoder, window, bits
