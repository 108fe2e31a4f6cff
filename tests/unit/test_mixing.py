"""Mixup/CutMix: targets match the pixels' mixing weight, boxes match lam, the RNG state round-trips."""

from __future__ import annotations

import pytest
import torch

from darklight_dist.data.mixing import Mixer, mixing_alphas


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(4, 3, 16, 16)
    for i in range(4):
        x[i] = float(i + 1)  # each image a constant: the mix weight is readable from the pixels
    return x, torch.tensor([0, 1, 2, 3])


def test_mixup_pixels_and_targets_use_the_same_lam() -> None:
    m = Mixer(mixup_alpha=0.4, cutmix_alpha=0.0, num_classes=5, seed=1, rank=0)
    x, y = batch()
    xm, t = m(x, y)
    lam = m.last_lam
    assert torch.allclose(xm[0], torch.full_like(xm[0], lam * 1 + (1 - lam) * 4))
    assert torch.allclose(t[0], torch.tensor([lam, 0, 0, 1 - lam, 0]))
    assert torch.allclose(t.sum(1), torch.ones(4))


def test_cutmix_box_area_equals_one_minus_lam() -> None:
    m = Mixer(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=4, seed=2, rank=0)
    for _ in range(5):
        x, y = batch()
        xm, t = m(x, y)
        pasted = (xm[0] == 4.0).float().mean().item()  # image 0's partner is image 3 (value 4)
        assert pasted == pytest.approx(1 - m.last_lam, abs=1e-6)
        assert t[0, 0].item() == pytest.approx(m.last_lam, abs=1e-6)
        assert torch.equal(x, batch()[0]), "the input batch must not be modified in place"


def test_state_round_trip_gives_the_same_next_mix() -> None:
    a = Mixer(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=4, seed=3, rank=1)
    a(*batch())
    state = a.state_dict()
    nxt = a(*batch())[0]
    b = Mixer(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=4, seed=99, rank=0)
    b.load_state_dict(state)
    assert torch.equal(b(*batch())[0], nxt)


def test_ranks_draw_different_mixes_and_label_free_gives_no_targets() -> None:
    x, _ = batch()
    r0 = Mixer(mixup_alpha=1.0, cutmix_alpha=0.0, num_classes=4, seed=0, rank=0)
    r1 = Mixer(mixup_alpha=1.0, cutmix_alpha=0.0, num_classes=4, seed=0, rank=1)
    (a, ta), (b, _) = r0(x, None), r1(x, None)
    assert ta is None and not torch.equal(a, b)


def test_function_matching_defaults_to_mixup_every_batch() -> None:
    assert mixing_alphas("fm", None, None) == (1.0, 0.0)
    assert mixing_alphas("fm", 0.0, None) == (0.0, 0.0)
    assert mixing_alphas("soft", None, None) == (0.0, 0.0)
