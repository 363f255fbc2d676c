import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recbook.training import losses


@pytest.fixture
def case():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, generator=g, dtype=torch.float64) * 5
    y = (torch.rand(200, generator=g, dtype=torch.float64) < 0.4).double()
    return z, y


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_torch(case, reduction):
    z, y = case
    torch.testing.assert_close(losses.bce_with_logits(z, y, reduction), F.binary_cross_entropy_with_logits(z, y, reduction=reduction))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_matches_torch(case, reduction):
    z, y = case
    p = torch.sigmoid(z).clamp(1e-6, 1 - 1e-6)
    torch.testing.assert_close(losses.binary_cross_entropy(p, y, reduction), F.binary_cross_entropy(p, y, reduction=reduction))


def test_pos_weight_matches_torch(case):
    z, y = case
    expected = F.binary_cross_entropy_with_logits(z, y, pos_weight=torch.tensor(3.0, dtype=torch.float64))
    torch.testing.assert_close(losses.bce_with_logits(z, y, pos_weight=3.0), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits_are_finite_and_match_torch(dtype):
    z = torch.tensor([-100.0, -50.0, -20.0, 0.0, 20.0, 50.0, 100.0], dtype=dtype)
    for y in (torch.zeros_like(z), torch.ones_like(z)):
        ours = losses.bce_with_logits(z, y, reduction="none")
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, F.binary_cross_entropy_with_logits(z, y, reduction="none"))
    # and the naive form really breaks there (float32), which is what notebook 01 shows
    naive = losses.naive_bce_with_logits(torch.tensor([100.0, -100.0]), torch.tensor([0.0, 1.0]), reduction="none")
    assert not torch.isfinite(naive).all()


def test_probabilities_zero_and_one_give_finite_loss():
    p, y = torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = losses.binary_cross_entropy(p, y, reduction="none")
    assert torch.isfinite(loss).all() and (loss[:2] > 20).all()
    torch.testing.assert_close(loss, F.binary_cross_entropy(p, y, reduction="none"))


def test_naive_agrees_with_stable_for_moderate_logits(case):
    z, y = case
    z = z.clamp(-10, 10)
    torch.testing.assert_close(losses.naive_bce_with_logits(z, y), losses.bce_with_logits(z, y))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_closed_form_gradient_matches_autograd(case, reduction):
    z, y = case
    z = z.clone().requires_grad_(True)
    F.binary_cross_entropy_with_logits(z, y, reduction=reduction).backward()
    torch.testing.assert_close(losses.bce_grad_logits(z.detach(), y, reduction), z.grad)


def test_gradient_none_reduction_is_sigmoid_minus_y(case):
    z, y = case
    torch.testing.assert_close(losses.bce_grad_logits(z, y, "none"), torch.sigmoid(z) - y)


def test_seed_article_sign_error_rewards_wrong_answers():
    # the seed's  -y log p + (1-y) log(1-p): for y=0 it *decreases* as p -> 1 (confidently wrong)
    def seed_loss(p, y):
        return -y * np.log(p) + (1 - y) * np.log(1 - p)

    assert seed_loss(0.99, 0) < seed_loss(0.01, 0)
    assert losses.binary_cross_entropy(torch.tensor([0.99]), torch.tensor([0.0])) > losses.binary_cross_entropy(torch.tensor([0.01]), torch.tensor([0.0]))


def test_distillation_bce_soft_only_and_mixed():
    g = torch.Generator().manual_seed(1)
    zs = torch.randn(50, generator=g, dtype=torch.float64)
    zt = torch.randn(50, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(50, generator=g, dtype=torch.float64) < 0.5).double()
    T = 4.0
    soft = F.binary_cross_entropy_with_logits(zs / T, torch.sigmoid(zt / T)) * T * T
    torch.testing.assert_close(losses.distillation_bce(zs, zt, temperature=T), soft)
    hard = F.binary_cross_entropy_with_logits(zs, y)
    torch.testing.assert_close(losses.distillation_bce(zs, zt, y, temperature=T, alpha=0.3), 0.3 * hard + 0.7 * soft)


def test_distillation_minimised_at_teacher_logits():
    zt = torch.tensor([-3.0, 0.5, 2.0], dtype=torch.float64)
    zs = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([zs], lr=0.5)
    for _ in range(500):
        opt.zero_grad()
        losses.distillation_bce(zs, zt, temperature=2.0).backward()
        opt.step()
    torch.testing.assert_close(zs.detach(), zt, atol=1e-3, rtol=0)


def test_distillation_no_gradient_into_teacher():
    zt = torch.randn(5, requires_grad=True)
    zs = torch.randn(5, requires_grad=True)
    losses.distillation_bce(zs, zt).backward()
    assert zt.grad is None


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.bce_with_logits(torch.zeros(3), torch.zeros(4)), "same shape"),
        (lambda: losses.bce_with_logits(torch.zeros(3), torch.zeros(3), reduction="avg"), "reduction"),
        (lambda: losses.binary_cross_entropy(torch.tensor([1.5]), torch.tensor([1.0])), "probabilities"),
        (lambda: losses.bce_grad_logits(torch.zeros(2), torch.zeros(2), reduction="x"), "reduction"),
        (lambda: losses.distillation_bce(torch.zeros(2), torch.zeros(2), temperature=0), "temperature"),
        (lambda: losses.distillation_bce(torch.zeros(2), torch.zeros(2), alpha=2), "alpha"),
        (lambda: losses.distillation_bce(torch.zeros(2), torch.zeros(2), torch.zeros(3)), "same shape"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_accepts_lists_and_integer_labels():
    out = losses.bce_with_logits([0.0, 1.0], [0, 1])
    expected = F.binary_cross_entropy_with_logits(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(out, expected)


def test_gradient_is_exact_at_zero_logits():
    # a zero-initialised model starts at z = 0, where the max/abs form's autograd gradient is wrong
    z = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    losses.bce_with_logits(z, y, reduction="sum").backward()
    torch.testing.assert_close(z.grad, torch.sigmoid(z.detach()) - y)
    z2 = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    losses.bce_with_logits(z2, y, reduction="sum", pos_weight=2.0).backward()
    z3 = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    F.binary_cross_entropy_with_logits(z3, y, reduction="sum", pos_weight=torch.tensor(2.0, dtype=torch.float64)).backward()
    torch.testing.assert_close(z2.grad, z3.grad)
