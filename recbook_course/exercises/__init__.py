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
    ch04a_finetune_bert,
    ch04b_movielens_cli,
    ch04c_cascade,
    ch04d_lm_recommender,
    ch04s_sequential,
    ch04t_sequential_cold_start,
    ch05_peft,
    ch06_pruning,
    ch07_distillation,
    ch08_quantization,
    ch09_compression_pareto,
    ch10_distributed,
    ch11_gpu_tpu,
    ch12_serving,
    ch13_continual,
)
from recbook_course.exercises.core import Exercise, check, list_exercises

__all__ = ["Exercise", "check", "list_exercises"]
