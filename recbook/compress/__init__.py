"""Model compression for the cross-encoder: pruning, distillation, quantization, compact storage.

Taught in notebooks ``06_pruning`` … ``09_compression_pareto``; measured by :mod:`recbook.compress.bench`.
"""
