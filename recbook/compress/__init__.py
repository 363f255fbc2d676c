"""Making the recommender cheaper: pruning (``prune``), distillation (``distill``, ``student``), quantization
(``quantize``, ``onnx``), compact files (``storage``); the cross-encoder's variants (``variants``) measured by
``bench`` and read by ``report``; the catalogue encoder (``catalogue``); what runs per request, compressed
(``request``, ``request_variants``).

Taught in notebooks ``06_pruning`` … ``09_compression_pareto``.
"""
