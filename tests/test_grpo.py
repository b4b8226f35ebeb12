"""Hand-computed checks of the pure GRPO functions in studykit.grpo."""

from __future__ import annotations

import math

import pytest
import torch

from studykit import grpo

R = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
C = R > 0.5


def test_grpo_hand_values_unbiased_std():
    adv = grpo.compute_advantages(R, "grpo", eps=0.0 + 1e-6)
    # row 0: mean .5, unbiased std sqrt(1/3); row 2: mean .25, unbiased std .5
    s0 = math.sqrt(1 / 3)
    expect0 = torch.tensor([0.5, -0.5, -0.5, 0.5]) / (s0 + 1e-6)
    expect2 = torch.tensor([-0.25, -0.25, -0.25, 0.75]) / (0.5 + 1e-6)
    assert torch.allclose(adv[0], expect0, atol=1e-6)
    assert torch.allclose(adv[2], expect2, atol=1e-6)
    assert torch.equal(adv[1], torch.zeros(4))  # zero-variance group -> zeros


def test_group_of_one_is_zero():
    adv = grpo.compute_advantages(torch.tensor([[3.0], [-1.0]]), "grpo")
    assert torch.equal(adv, torch.zeros(2, 1))


def test_dr_grpo_is_centred_rewards():
    adv = grpo.compute_advantages(R, "dr_grpo")
    assert torch.allclose(adv[2], torch.tensor([-0.25, -0.25, -0.25, 0.75]))
    assert torch.allclose(adv[0], torch.tensor([0.5, -0.5, -0.5, 0.5]))


def test_nsr_psr_split_grpo_exactly():
    g = grpo.compute_advantages(R, "grpo")
    n = grpo.compute_advantages(R, "nsr")
    p = grpo.compute_advantages(R, "psr")
    assert torch.equal(n + p, g)
    assert torch.all(n[C] == 0) and torch.all(p[~C] == 0)
    assert torch.all(n[~C & (g != 0)] < 0) and torch.all(p[C & (g != 0)] > 0)


def test_masks_follow_the_training_reward_not_correctness():
    # Regression: a correct but badly formatted sample has reward 0. The masks used true correctness, so
    # "positive-only" PSR pushed it down and NSR dropped it. They read the reward now, as the paper's code does.
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # sample 1 is correct but unformatted (reward 0)
    g = grpo.compute_advantages(rewards, "grpo")
    psr = grpo.compute_advantages(rewards, "psr")
    nsr = grpo.compute_advantages(rewards, "nsr")
    assert psr[0, 1] == 0 and psr[0, 0] > 0
    assert nsr[0, 1] == g[0, 1] < 0 and nsr[0, 0] == 0


def test_nsr_keeps_rewards_below_one_psr_above_zero():
    rewards = torch.tensor([[1.0, 0.5, 0.0, -0.5]])  # a graded reward: the paper's masks are r < 1 and r > 0
    g = grpo.compute_advantages(rewards, "grpo")
    nsr = grpo.compute_advantages(rewards, "nsr")
    psr = grpo.compute_advantages(rewards, "psr")
    assert torch.equal(nsr[0, 1:], g[0, 1:]) and nsr[0, 0] == 0
    assert torch.equal(psr[0, :2], g[0, :2]) and torch.all(psr[0, 2:] == 0)


def test_w_reinforce_values():
    adv = grpo.compute_advantages(R, "w_reinforce", lam=0.1)
    expect = torch.where(C, torch.tensor(0.1), torch.tensor(-1.0))
    assert torch.allclose(adv, expect)
    assert adv[1].tolist() == pytest.approx([0.1] * 4)  # no baseline: all-correct group still gets +lam


def test_zhu_et_al_nsr_and_psr_have_no_baseline():
    nsr = grpo.compute_advantages(R, "nsr_reinforce")
    psr = grpo.compute_advantages(R, "psr_reinforce")
    assert torch.equal(nsr, torch.where(C, torch.tensor(0.0), torch.tensor(-1.0)))
    assert torch.equal(psr, torch.where(C, torch.tensor(1.0), torch.tensor(0.0)))
    assert nsr[2, :3].tolist() == [-1.0] * 3  # a mostly wrong group: every wrong sample gets -1
    assert psr[1].tolist() == [1.0] * 4  # an all-correct group still pushes up (no group mean)


def test_bad_estimator_and_shapes():
    with pytest.raises(ValueError, match="grpo.*dr_grpo"):
        grpo.compute_advantages(R, "ppo")
    with pytest.raises(ValueError, match="2-D"):
        grpo.compute_advantages(torch.ones(4), "grpo")


def test_filter_groups():
    keep = grpo.filter_groups(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.5, 0.5], [-1.0, 2.0]]))
    assert keep.tolist() == [True, False, False, True]
    assert keep.dtype == torch.bool


def _loss_inputs():
    # two sequences, three tokens; seq 0 has A>0, seq 1 A<0; last token of seq 1 is padding
    old = torch.zeros(2, 3)
    new = torch.log(torch.tensor([[1.5, 1.1, 0.9], [0.5, 0.95, 7.0]])).requires_grad_(True)
    adv = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    return new, old, adv, mask


def test_clipping_both_sides_and_zero_grad_on_clipped_tokens():
    new, old, adv, mask = _loss_inputs()
    loss, stats = grpo.policy_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.28)
    # per-token: seq0: ratio 1.5 clipped to 1.28 -> -2*1.28; 1.1 -> -2.2; 0.9 -> -1.8
    #            seq1: ratio 0.5 clipped to 0.8 -> +0.8; 0.95 -> +0.95
    expect = (-2 * 1.28 - 2.2 - 1.8 + 0.8 + 0.95) / 5
    assert loss.item() == pytest.approx(expect, rel=1e-5)
    loss.backward()
    g = new.grad
    assert g[0, 0] == 0 and g[1, 0] == 0  # clipped high and low
    assert g[1, 2] == 0  # masked
    # unclipped token: d/dlp (-A * exp(lp)) / 5 = -A * ratio / 5
    assert g[0, 1].item() == pytest.approx(-2 * 1.1 / 5, rel=1e-5)
    assert g[1, 1].item() == pytest.approx(0.95 / 5, rel=1e-5)
    assert stats["clip_frac"] == pytest.approx(2 / 5)
    assert stats["clip_frac_low"] == pytest.approx(1 / 5) and stats["clip_frac_high"] == pytest.approx(1 / 5)
    assert stats["ratio_max"] == pytest.approx(1.5, rel=1e-5)
    assert stats["ratio_mean"] == pytest.approx((1.5 + 1.1 + 0.9 + 0.5 + 0.95) / 5, rel=1e-5)


def test_no_clip_is_plain_ratio_times_advantage():
    new, old, adv, mask = _loss_inputs()
    loss, stats = grpo.policy_loss(new, old, adv, mask, clip=False)
    expect = (-2 * (1.5 + 1.1 + 0.9) + (0.5 + 0.95)) / 5
    assert loss.item() == pytest.approx(expect, rel=1e-5)
    loss.backward()
    assert new.grad[0, 0].item() == pytest.approx(-2 * 1.5 / 5, rel=1e-5)
    assert stats["clip_frac"] == 0.0


def test_agg_modes_by_hand():
    new, old, adv, mask = _loss_inputs()
    t = torch.tensor([[-2 * 1.28, -2.2, -1.8], [0.8, 0.95, 0.0]])
    seq_sum = t.sum(1)
    l_mean, _ = grpo.policy_loss(new, old, adv, mask, agg="seq-mean-token-mean")
    l_sum, _ = grpo.policy_loss(new, old, adv, mask, agg="seq-mean-token-sum")
    assert l_mean.item() == pytest.approx(((seq_sum[0] / 3 + seq_sum[1] / 2) / 2).item(), rel=1e-5)
    assert l_sum.item() == pytest.approx((seq_sum.sum() / 2).item(), rel=1e-5)
    with pytest.raises(ValueError, match="token-mean"):
        grpo.policy_loss(new, old, adv, mask, agg="sum")


def test_masked_tokens_never_contribute():
    new, old, adv, mask = _loss_inputs()
    junk = new.detach().clone()
    junk[1, 2] = 50.0  # absurd value under the mask
    base, s1 = grpo.policy_loss(new.detach(), old, adv, mask)
    other, s2 = grpo.policy_loss(junk, old, adv, mask)
    assert base.item() == pytest.approx(other.item()) and s1 == s2
    assert math.isfinite(other.item())


def test_kl_and_entropy_terms():
    new, old, adv, mask = _loss_inputs()
    ref = torch.zeros(2, 3)
    ent = torch.full((2, 3), 2.0)
    base, _ = grpo.policy_loss(new, old, adv, mask)
    with_kl, stats = grpo.policy_loss(new, old, adv, mask, ref_logprobs=ref, kl_coef=0.5)
    d = (ref - new.detach())[mask > 0]
    k3 = (d.exp() - d - 1).mean().item()
    assert with_kl.item() == pytest.approx(base.item() + 0.5 * k3, rel=1e-5)
    assert stats["kl_ref"] == pytest.approx(k3, rel=1e-5)
    with_ent, stats = grpo.policy_loss(new, old, adv, mask, entropy=ent, entropy_coef=0.1)
    assert with_ent.item() == pytest.approx(base.item() - 0.2, rel=1e-5)
    assert stats["entropy"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo.policy_loss(new, old, adv, mask, kl_coef=0.1)


def test_token_logprobs_match_manual_and_temperature():
    from conftest import build_tiny_model

    model = build_tiny_model(vocab_size=20, seed=1)
    # left-padded prompt (pad=0) of length 3, completion of length 2 with right padding on row 1
    ids = torch.tensor([[1, 5, 6, 7, 8], [0, 1, 5, 9, 0]])
    attn = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 0]])
    cmask = torch.tensor([[1, 1], [1, 0]])
    lp, ent = grpo.token_logprobs(model, ids, attn, cmask, temperature=0.7)
    assert lp.shape == (2, 2) and ent.shape == (2, 2)
    assert lp[1, 1] == 0 and ent[1, 1] == 0
    with torch.no_grad():  # row 1 alone, unpadded: tokens [1, 5, 9]
        logits = model(input_ids=torch.tensor([[1, 5, 9]])).logits[0, 1] / 0.7
    ref = torch.log_softmax(logits, -1)
    assert lp[1, 0].item() == pytest.approx(ref[9].item(), abs=1e-5)
    assert ent[1, 0].item() == pytest.approx(-(ref.exp() * ref).sum().item(), abs=1e-5)
    full_lp, _ = grpo.token_logprobs(model, ids, attn, torch.cat([torch.zeros(2, 3, dtype=torch.long), cmask], 1), 0.7)
    assert torch.allclose(full_lp[:, 3:], lp, atol=1e-6)
