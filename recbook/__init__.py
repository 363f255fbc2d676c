"""recbook — the companion package of the recbook course.

Folders that name the course's parts, each importing only those below it (``[tool.importlinter]`` in pyproject.toml):

- :mod:`recbook.cli`          ``python -m recbook``: one module per command
- :mod:`recbook.serve`        the recommendation service and its bundle (17)
- :mod:`recbook.compress`     pruning, distillation, quantization, the benchmark (11–14)
- :mod:`recbook.continual`    drift, retention, update strategies (18)
- :mod:`recbook.distributed`  ``torchrun``: DDP, FSDP2, tensor parallelism (15)
- :mod:`recbook.runs`         fit any model by name, run records, the cache of fits
- :mod:`recbook.models`       the ``Recommender`` contract, the registry, one file per model (03, 04–09)
- :mod:`recbook.finetune`     PEFT, adapters, hard negatives (08, 10)
- :mod:`recbook.evaluation`   metrics, confidence intervals, the protocol, robustness (01, 03)
- :mod:`recbook.training`     the one training loop, checkpoints, losses (01, 03)
- :mod:`recbook.data`         datasets, splits, negatives, text pairs (02)
- :mod:`recbook.perf`         device, timing, acceleration (00, 16)
- :mod:`recbook.profile`, :mod:`recbook.errors`, :mod:`recbook.usage`   sizes, errors, accepted values

The course's own helpers (exercise checks, records, the release) are in :mod:`recbook_course`, beside the library.
Importing ``recbook`` loads nothing else (torch included): each module is imported when used.
"""

__version__ = "0.1.0"
