"""How a recommender is judged: ranking and classification metrics (``metrics``), confidence intervals and paired
comparisons over users (``stats``), the course's evaluation protocol — which users, which items, which history
(``protocol``) — and how far a recommendation moves when its input is slightly wrong (``robustness``)."""
