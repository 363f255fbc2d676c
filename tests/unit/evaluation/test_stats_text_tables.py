"""The reading tables of recbook.evaluation.stats: intervals as text, and chosen pairs compared."""

import numpy as np
import pandas as pd

from recbook.evaluation.stats import ci_table, ci_text_table, mean_ci, paired_comparison, pairs_table


def _per_user():
    rng = np.random.default_rng(0)
    base = pd.Series(rng.random(200), index=np.arange(200) + 1)
    return {"A": pd.DataFrame({"NDCG@10": base + 0.05, "HR@10": (base > 0.4).astype(float)}),
            "B": pd.DataFrame({"NDCG@10": base, "HR@10": (base > 0.5).astype(float)}),
            "C": pd.DataFrame({"NDCG@10": base + rng.normal(0, 0.2, 200), "HR@10": (base > 0.5).astype(float)})}


def test_ci_text_table_prints_the_ci_table():
    per_user = _per_user()
    text, numbers = ci_text_table(per_user, ("NDCG@10", "HR@10")), ci_table(per_user, ("NDCG@10", "HR@10"))
    assert list(text.columns) == ["NDCG@10", "HR@10", "users"] and list(text.index) == ["A", "B", "C"]
    assert text.loc["A", "NDCG@10"] == str(mean_ci(per_user["A"]["NDCG@10"]))
    row = numbers.loc["B"]
    assert text.loc["B", "HR@10"].startswith(f"{row['HR@10']:.3f} [")
    assert (text["users"] == 200).all()


def test_pairs_table_matches_paired_comparison():
    per_user = _per_user()
    table = pairs_table(per_user, [("A", "B"), ("C", "B")])
    assert list(table.index) == ["A − B", "C − B"]
    ab = paired_comparison(per_user["A"]["NDCG@10"], per_user["B"]["NDCG@10"], ("A", "B"))
    assert table.loc["A − B", "NDCG@10 difference"] == round(ab.diff.mean, 4) and table.loc["A − B", "verdict"] == "A beats B"
    assert "inconclusive" in table.loc["C − B", "verdict"]
