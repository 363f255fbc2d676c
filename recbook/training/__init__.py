"""Training: the course's one loop (``loop``), exact-resume checkpoints (``checkpoint``) and the losses written out
(``losses``)."""
