"""Hand-computed checks of the pure GRPO functions in studykit.engine.grpo."""

from __future__ import annotations

import math

import pytest
import torch

from studykit.engine import grpo

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


# ---- issue 10: micro-batch denominators, truncated importance sampling, chunked log-probs


def _rows(seed=0, B=5, T=6):
    g = torch.Generator().manual_seed(seed)
    new = (torch.randn(B, T, generator=g) * 0.3 - 1.0).requires_grad_(True)
    old = new.detach() + torch.randn(B, T, generator=g) * 0.2
    adv = torch.randn(B, generator=g)
    mask = torch.ones(B, T)
    mask[1, 4:] = 0
    mask[3] = 0  # an empty sequence: never counts for the seq-mean denominators
    mask[4, 2:] = 0
    return new, old, adv, mask


@pytest.mark.parametrize("agg", grpo.AGGS)
def test_micro_batch_losses_with_the_mini_batch_denominator_add_up_exactly(agg):
    new, old, adv, mask = _rows()
    whole, stats = grpo.policy_loss(new, old, adv, mask, agg=agg)
    (g_whole,) = torch.autograd.grad(whole, new)
    parts = [slice(0, 2), slice(2, 3), slice(3, 5)]
    denom = grpo.loss_denominator([mask[p] for p in parts], agg)
    expect = mask.sum() if agg == "token-mean" else torch.tensor(4.0)  # 4 non-empty sequences
    assert denom.item() == expect.item()
    total = sum(grpo.policy_loss(new[p], old[p], adv[p], mask[p], agg=agg, denom=denom)[0] for p in parts)
    (g_parts,) = torch.autograd.grad(total, new)
    assert total.item() == pytest.approx(whole.item(), rel=1e-6)
    assert torch.allclose(g_parts, g_whole, atol=1e-7)
    with pytest.raises(ValueError, match="token-mean"):
        grpo.loss_denominator([mask], "sum")


def test_tis_weights_are_capped_ratios_of_trainer_to_sampler():
    old = torch.log(torch.tensor([[0.5, 0.2, 0.9]]))
    sampler = torch.log(torch.tensor([[0.25, 0.4, 0.1]]))
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = grpo.tis_weights(old, sampler, mask, cap=1.5)
    assert w.tolist()[0] == pytest.approx([1.5, 0.5, 1.0])  # 2.0 capped; 0.5; masked -> 1
    assert not w.requires_grad
    new = old.clone().requires_grad_(True)
    adv = torch.tensor([1.0])
    loss, stats = grpo.policy_loss(new, old, adv, mask, is_weights=w)
    assert loss.item() == pytest.approx(-(1.5 + 0.5) / 2)  # ratio 1: pg term = -A * w per token
    (g,) = torch.autograd.grad(loss, new)
    assert g[0, :2].tolist() == pytest.approx([-1.5 / 2, -0.5 / 2])
    assert stats["tis_weight_mean"] == pytest.approx(1.0) and stats["tis_weight_max"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="cap"):
        grpo.tis_weights(old, sampler, mask, cap=0)


def _reference_token_logprobs(model, input_ids, attention_mask, completion_mask, temperature=1.0):
    """token_logprobs as it was before issue 10: one full-vocabulary fp32 log-softmax with autograd."""
    T, full = grpo._completion_window(input_ids, completion_mask)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    keep = T if full else T + 1
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=keep)
    logits = out.logits[:, -keep:-1, :].float() / temperature
    targets = input_ids[:, -T:] if not full else input_ids[:, 1:]
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    ent = -(logp_all.exp() * logp_all).sum(-1)
    if full:
        pad = torch.zeros_like(logp[:, :1])
        logp, ent = torch.cat([pad, logp], dim=1), torch.cat([pad, ent], dim=1)
    cm = completion_mask.to(logp.dtype)
    return logp * cm, ent * cm


def _packed_rows(vocab, B=5, L=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (B, L), generator=g)
    attn, cm = torch.ones(B, L, dtype=torch.long), torch.zeros(B, L)
    for b in range(B):  # prompts of 4..8 tokens, right-padded completions of 3..11 (as rollout.pack builds them)
        p, c = 4 + b, 3 + 2 * b
        cm[b, p:min(L, p + c)] = 1
        attn[b, min(L, p + c):] = 0
    return ids, attn, cm


@pytest.mark.parametrize("chunk", [1, 3, 1024])
@pytest.mark.parametrize("window", [False, True])
@pytest.mark.parametrize("entropy_weight", [0.0, 0.5])
def test_chunked_logprobs_equal_the_full_log_softmax_in_values_and_gradients(chunk, window, entropy_weight):
    from conftest import build_tiny_model

    model = build_tiny_model(vocab_size=300, seed=1).train()
    ids, attn, cm = _packed_rows(300)
    mask = cm[:, -10:] if window else cm
    results = []
    for impl in (_reference_token_logprobs, lambda *a: grpo.token_logprobs(*a, chunk=chunk)):
        model.zero_grad()
        lp, ent = impl(model, ids, attn, mask, 0.7)
        (0.3 * lp.sum() + (lp ** 2).sum() - entropy_weight * ent.sum()).backward()
        results.append((lp.detach(), ent.detach(), [p.grad.clone() for p in model.parameters()]))
    (lp_a, ent_a, g_a), (lp_b, ent_b, g_b) = results
    # the same arithmetic per position: equal to the bit on this machine, and at least to float precision
    assert torch.allclose(lp_a, lp_b, atol=1e-6, rtol=0) and torch.allclose(ent_a, ent_b, atol=1e-6, rtol=0)
    for x, y in zip(g_a, g_b):
        assert torch.allclose(x, y, atol=1e-6, rtol=1e-5)


def _saved_bytes(fn) -> int:
    """Bytes of the distinct tensors autograd saves for backward while `fn` runs."""
    seen = {}

    def pack_hook(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
        fn()
    return sum(seen.values())


def test_chunked_logprobs_keep_only_the_logits_for_backward():
    # The memory claim of issue 10, measured: the old path kept several [B, T, V] fp32 tensors (log-softmax out,
    # its exp for the entropy, the gather's input) on top of the logits; the chunked one keeps the logits only.
    B, T, V = 2, 64, 4096
    logits = torch.randn(B, T + 1, V, requires_grad=True)
    targets = torch.randint(0, V, (B, T))
    logits_bytes = logits.numel() * 4

    def old():
        lp_all = torch.log_softmax(logits[:, :-1].float(), -1)
        (lp_all.gather(-1, targets[..., None]).sum() + (lp_all.exp() * lp_all).sum())

    def new():
        lp, ent = grpo.chunked_token_logprobs(logits * 1.0, targets, 1.0, chunk=32)
        (lp.sum() + ent.sum())

    saved_old, saved_new = _saved_bytes(old), _saved_bytes(new)
    assert saved_old >= 2 * B * T * V * 4
    assert saved_new <= logits_bytes + 4 * B * T * 8  # the logits, plus [B, T] index-sized tensors


def test_k3_kl_is_clamped_like_verls_low_var_kl():
    # Regression (issue 20): a huge reference/policy log-prob gap made exp(ref - lp) overflow to inf.
    new, old, adv, mask = _loss_inputs()
    ref = torch.full((2, 3), 200.0)  # ref log-prob far above the policy's: k3 = exp(200) - ... overflows fp32
    loss, stats = grpo.policy_loss(new, old, adv, mask, ref_logprobs=ref, kl_coef=0.5)
    base, _ = grpo.policy_loss(new, old, adv, mask)
    assert math.isfinite(loss.item()) and stats["kl_ref"] == pytest.approx(grpo.KL_CLAMP)
    assert loss.item() == pytest.approx(base.item() + 0.5 * grpo.KL_CLAMP, rel=1e-5)
    loss.backward()
    assert torch.isfinite(new.grad).all()
    low, stats = grpo.policy_loss(new.detach(), old, adv, mask, ref_logprobs=torch.full((2, 3), -1e4), kl_coef=0.5)
    assert math.isfinite(low.item()) and stats["kl_ref"] == pytest.approx(grpo.KL_CLAMP)  # -d - 1 -> 10 too
