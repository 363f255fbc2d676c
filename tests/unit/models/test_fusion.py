"""recbook.models.fusion.ScoreFusion: a product of the members' next-item distributions (notebook 09)."""

import copy

import numpy as np
import pytest
from scipy.special import log_softmax

from recbook.data.splits import leave_last_out
from recbook.models import create
from recbook.models.base import Histories
from recbook.models.fusion import ScoreFusion


@pytest.fixture(scope="module")
def fitted(synthetic):
    split = leave_last_out(synthetic.interactions)
    return synthetic, split, create("pop").fit(synthetic, split), create("ease", l2=50.0).fit(synthetic, split)


def test_fused_scores_are_the_weighted_sum_of_log_softmaxes(fitted):
    ds, split, pop, ease = fitted
    histories = Histories.from_interactions(split.train, users=np.unique(split.test["user_id"])[:7])
    fused = ScoreFusion([pop, ease], weights=[0.5, 2.0])
    want = 0.5 * log_softmax(pop.score_all(histories), axis=1) + 2.0 * log_softmax(ease.score_all(histories), axis=1)
    np.testing.assert_allclose(fused.score_all(histories), want, rtol=1e-10, atol=1e-10)
    assert np.array_equal(fused.item_ids, ease.item_ids)
    # a member's shift by a per-user constant does not matter (log_softmax removes it): no calibration needed
    shifted = copy.copy(pop)
    shifted.score_all = lambda h: pop.score_all(h) + 1000.0 * np.arange(len(h))[:, None]
    np.testing.assert_allclose(ScoreFusion([shifted, ease], weights=[0.5, 2.0]).score_all(histories), want, atol=1e-8)
    only_ease = ScoreFusion([pop, ease], weights=[0.0, 1.0]).score_all(histories)
    np.testing.assert_allclose(only_ease, log_softmax(ease.score_all(histories), axis=1), atol=1e-10)


def test_fit_fits_the_members_that_are_not_fitted(fitted):
    ds, split, pop, _ = fitted
    fresh = create("itemknn", neighbours=20)
    fused = ScoreFusion([pop, fresh]).fit(ds, split)
    assert fresh.item_ids is not None and np.array_equal(fused.item_ids, pop.item_ids)
    histories = Histories.from_interactions(split.train, users=np.unique(split.test["user_id"])[:3])
    assert fused.score_all(histories).shape == (3, len(ds.item_ids))


def test_fusion_errors(fitted):
    ds, split, pop, ease = fitted
    with pytest.raises(ValueError, match="at least two members"):
        ScoreFusion([pop])
    with pytest.raises(ValueError, match="one non-negative number per member"):
        ScoreFusion([pop, ease], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="not all 0"):
        ScoreFusion([pop, ease], weights=[0, 0])
    reordered = copy.copy(pop)
    reordered.item_ids = pop.item_ids[::-1]  # the same items in another column order: columns would not line up
    with pytest.raises(ValueError, match="another catalogue"):
        ScoreFusion([pop, reordered])
    with pytest.raises(NotImplementedError, match="save each member"):
        ScoreFusion([pop, ease]).save_pretrained("anywhere")
