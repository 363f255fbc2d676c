"""Runs: fit any registered recommender by name on a prepared split, evaluate, save and reload it (``recipe``, what
the commands and the notebooks call), and the content-keyed cache that trains each model once (``cache``)."""
