"""recbook — the companion package of the recbook course.

Each module holds one idea and names the notebook that teaches it:

- :mod:`recbook.perf.device`     environment report, device, seeds (00_setup)
- :mod:`recbook.profile`    profiles: every size a notebook uses (00_setup)
- :mod:`recbook.training.losses`     binary cross-entropy and distillation loss (01_cross_entropy)
- :mod:`recbook.evaluation.metrics`    AUC and top-k ranking metrics, sampled / full ranking (01, 03)
- :mod:`recbook.data`       datasets, splits, negatives, text pairs, tokenization (02_data)
- :mod:`recbook_course.exercises`  self-checks for the notebooks' exercises
- :mod:`recbook_course.record`     records what a notebook measured, for the course summary
- :mod:`recbook.models`     the models, and the one registry of those fitted by name
- :mod:`recbook.runs.recipe`   fit, evaluate, save and reload any registered model (what the command lines call)
- :mod:`recbook.perf.timing`     timing and peak-memory measurement
- :mod:`recbook.cli`        ``python -m recbook``: parses arguments, calls the library, prints

Importing ``recbook`` loads nothing else (torch included): each module is imported when used.
"""

__version__ = "0.1.0"
