"""Keeping a recommender good over time (notebook 18): drift detection (``drift``, ``drift_export``), the stream of
interactions with held-out events (``stream``), what an update keeps of the past (``retention``), update strategies
(``strategies``) and the whole experiment against retraining, over seeds, with settings chosen on validation
(``experiment``)."""
