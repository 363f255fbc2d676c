"""Making the recommender cheaper: pruning (``prune``), distillation (``distill``, ``student``), quantization
(``quantize``, ``onnx``), compact files (``storage``); the cross-encoder's variants (``variants``) measured by
``bench`` and read by ``report``; the catalogue encoder (``catalogue``); what runs per request, compressed
(``request``, ``request_variants``) and the request benchmark (``request_bench``).

Taught in notebooks ``11_pruning`` … ``14_compression_pareto``.
"""
