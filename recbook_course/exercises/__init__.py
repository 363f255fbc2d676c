"""Self-checks for the notebooks' exercises: ``check("01.bce", my_bce)`` says whether you got it.

Every checker computes the expected answer itself (with recbook or a reference
library) on fresh random cases, so it cannot be passed by copying a printed number.
``list_exercises()`` shows every exercise with its task.
"""

from recbook_course.exercises import (  # noqa: F401 (each chapter module registers its checkers)
    ch00_setup,
    ch01_cross_entropy,
    ch02_data,
    ch03_baselines,
    ch04_sequential,
    ch05_sequential_cold_start,
    ch06_finetune_bert,
    ch07_movielens_cli,
    ch08_cascade,
    ch09_lm_recommender,
    ch10_peft,
    ch11_pruning,
    ch12_distillation,
    ch13_quantization,
    ch14_compression_pareto,
    ch15_distributed,
    ch16_gpu_tpu,
    ch17_serving,
    ch18_continual,
)
from recbook_course.exercises.core import Exercise, check, list_exercises

__all__ = ["Exercise", "check", "list_exercises"]
