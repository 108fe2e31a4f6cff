"""Losses against values computed by hand from their formulas, and gradcheck in float64."""

from __future__ import annotations

import math

import pytest
import torch

from darklight_dist.losses import build_loss, cross_entropy, function_matching, hard_kd, kl_div, soft_kd


def softmax(xs: list[float], T: float) -> list[float]:
    e = [math.exp(x / T) for x in xs]
    return [v / sum(e) for v in e]


def hand_kl(s: list[float], t: list[float], T: float) -> float:
    ps, pt = softmax(s, T), softmax(t, T)
    return sum(b * math.log(b / a) for a, b in zip(ps, pt))


def hand_ce(s: list[float], y: int, eps: float = 0.0) -> float:
    p = softmax(s, 1.0)
    n = len(s)
    return -sum(((1 - eps) * (i == y) + eps / n) * math.log(p[i]) for i in range(n))


S = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]
T_ = [[1.0, 1.5, -0.5], [3.0, -1.0, 0.0]]
Y = [0, 2]


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9, 1.0])
def test_soft_kd_matches_hand_computation(T: float, alpha: float) -> None:
    loss, parts = soft_kd(torch.tensor(S), torch.tensor(T_), torch.tensor(Y), temperature=T, alpha=alpha)
    kd = sum(hand_kl(s, t, T) for s, t in zip(S, T_)) / len(S) * T * T  # batch mean, T² factor
    ce = sum(hand_ce(s, y) for s, y in zip(S, Y)) / len(S)
    expected = kd if alpha == 1.0 else alpha * kd + (1 - alpha) * ce
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert parts["kd"].item() == pytest.approx(kd, rel=1e-5)


def test_soft_kd_t_squared_factor_is_applied() -> None:
    s, t = torch.tensor(S), torch.tensor(T_)
    l1, _ = soft_kd(s, t, None, temperature=3.0, alpha=1.0)
    assert l1.item() == pytest.approx(9.0 * kl_div(s, t, 3.0).item(), rel=1e-6)


def test_soft_kd_label_smoothing_on_label_term() -> None:
    loss, parts = soft_kd(torch.tensor(S), torch.tensor(T_), torch.tensor(Y), temperature=2.0, alpha=0.5,
                          label_smoothing=0.1)
    ce = sum(hand_ce(s, y, 0.1) for s, y in zip(S, Y)) / len(S)
    assert parts["ce"].item() == pytest.approx(ce, rel=1e-5)


def test_hard_kd_is_ce_against_teacher_argmax_averaged_with_labels() -> None:
    loss, _ = hard_kd(torch.tensor(S), torch.tensor(T_), torch.tensor(Y), alpha=0.5)
    t_arg = [1, 0]
    kd = sum(hand_ce(s, y) for s, y in zip(S, t_arg)) / 2
    ce = sum(hand_ce(s, y) for s, y in zip(S, Y)) / 2
    assert loss.item() == pytest.approx(0.5 * kd + 0.5 * ce, rel=1e-5)


def test_function_matching_ignores_labels() -> None:
    a, _ = function_matching(torch.tensor(S), torch.tensor(T_), torch.tensor(Y), temperature=1.0)
    b, _ = function_matching(torch.tensor(S), torch.tensor(T_), None, temperature=1.0)
    assert a.item() == b.item() == pytest.approx(sum(hand_kl(s, t, 1.0) for s, t in zip(S, T_)) / 2, rel=1e-5)


def test_cross_entropy_with_mixed_targets() -> None:
    target = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5]])
    loss, _ = cross_entropy(torch.tensor(S), None, target)
    expected = sum(-sum(w * math.log(p) for w, p in zip(tt, softmax(s, 1.0))) for s, tt in zip(S, target.tolist())) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_identical_logits_give_zero_kd() -> None:
    loss, _ = soft_kd(torch.tensor(S), torch.tensor(S), None, temperature=4.0, alpha=1.0)
    assert abs(loss.item()) < 1e-6


@pytest.mark.parametrize("kd", ["soft", "hard", "fm", "none"])
def test_gradcheck_float64(kd: str) -> None:
    torch.manual_seed(0)
    s = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    fn = build_loss(kd, temperature=2.0, alpha=0.7, label_smoothing=0.1)
    assert fn(s, t, y)[0].dtype == torch.float64  # no silent down-cast of float64 inputs
    assert torch.autograd.gradcheck(lambda x: fn(x, t, y)[0], (s,))
