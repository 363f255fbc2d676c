"""Serving a recommender in production: a retrieval → re-ranking cascade behind a secured, observable HTTP service.

Taught in notebook ``12_serving``. Modules:

- :mod:`recbook.serve.retrieval`: top-N retrieval from a precomputed item matrix — exact (a matrix product) or
  approximate (faiss), with the same ``search`` interface.
"""
