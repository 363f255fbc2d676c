"""Keeping a recommender good over time (notebook 13): drift detection (``drift``, ``drift_export``), what an update
keeps of the past (``retention``) and update strategies measured against retraining (``strategies``)."""
