"""Serving a recommender in production: a retrieval → re-ranking cascade behind a secured, observable HTTP service.

Taught in notebook ``17_serving``. Modules:

- :mod:`recbook.serve.retrieval`: top-N retrieval from a precomputed item matrix — exact (a matrix product) or
  approximate (faiss), with the same ``search`` interface.
- :mod:`recbook.serve.bundle`: the serving bundle — a versioned folder (retriever, item matrix, histories, int8 ONNX
  re-ranker) whose manifest lists every file's sha256, verified before anything is loaded; no pickle.
- :mod:`recbook.serve.app`: the FastAPI service (``create_app``): ``/recommend`` (retrieval → re-ranking),
  ``/rerank``, ``/explain``, ``/livez``, ``/readyz``, ``/metrics``, ``/admin/reload`` (hot swap); its parts:
  :mod:`~recbook.serve.settings` (``ServeSettings`` and the environment variables), :mod:`~recbook.serve.schemas`
  (request bodies with limits, 422 naming the field), :mod:`~recbook.serve.service` (the state: current bundle,
  limiters, metrics, CPU time per request), :mod:`~recbook.serve.middleware` (keys, limits, in-flight cap, body size,
  version header, logs — before FastAPI sees a request).
- :mod:`recbook.serve.security`: API keys (constant-time compare), cost-weighted token-bucket rate limits (per process,
  or shared through Redis with the ``limits`` library), salted hashes of user ids for the logs.
- :mod:`recbook.serve.batching`: ``MicroBatcher`` — concurrent re-ranker calls merged up to a batch size or a wait.
- :mod:`recbook.serve.logs`: one JSON object per log line, with the request id.
- :mod:`recbook.serve.process`: ``ServiceProcess`` — ``python -m recbook serve`` as a real process on 127.0.0.1, waited
  for on ``/readyz`` and always stopped (Ctrl-C first); what notebook 17 and the tests run.
- :mod:`recbook.serve.loadtest`: an open-loop load generator (Poisson arrivals, latency from the scheduled start,
  bounded in requests and time, localhost only) and its report and figures.
- :mod:`recbook.serve.cascade`: the cascade against scoring the whole catalogue with the cross-encoder — pairs, time
  per user and quality, with confidence intervals.
- :mod:`recbook.serve.scaling`: the Kubernetes HPA rule (desired = ceil(current × metric / target), with its
  tolerance and stabilisation window), as arithmetic a learner can check.
- :mod:`recbook.serve.ray_app`: the same app on Ray Serve (optional extra ``ray``): autoscaled replicas and
  ``@serve.batch``.

Deployment files (Kubernetes manifests, Prometheus alert rules and their ``promtool`` tests) are in ``deploy/``.
"""
