"""studykit.engine.update on the tiny Llama: micro-batched gradient accumulation equals the whole mini-batch for every
aggregation, statistics combine token-weighted, the KL reference starts at KL 0, TIS weights reach the loss."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from studykit.policy import models
from studykit.engine import update
from studykit.config.schema import validate
from studykit.engine.rollout import Rollouts

N_SEQ = 7


def _rollouts(vocab: int, seed: int = 0, empty: bool = True) -> Rollouts:
    g = torch.Generator().manual_seed(seed)
    out = Rollouts()
    for i in range(N_SEQ):
        p = 3 + int(torch.randint(0, 5, (1,), generator=g))
        c = 0 if (empty and i == 2) else 1 + int(torch.randint(0, 9, (1,), generator=g))  # one empty completion
        out.prompt_ids.append([1] + torch.randint(4, vocab, (p - 1,), generator=g).tolist())
        out.token_ids.append(torch.randint(4, vocab, (c,), generator=g).tolist())
        # sampler log-probs unlike the trainer's: ratios away from 1, so clipping and its statistics are exercised
        out.sampler_logprobs.append((-2.5 + 0.8 * torch.randn(c, generator=g)).tolist())
        out.advantages.append(float(torch.randn(1, generator=g)))
    return out


def _cfg(**sections):
    base = {"train": {"mini_batches": 1, "temperature": 0.9, "grad_clip": 1e9}, "algo": {"old_logprobs": "sampler"}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return validate(base)


@pytest.fixture(scope="module", params=["full", "lora"])
def policy(request, tiny_model_dir):
    torch.manual_seed(0)
    pol = models.load_policy(str(tiny_model_dir), finetune=request.param, lora_rank=4, lora_alpha=8, device="cpu")
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)  # away from the zero init: every adapter weight gets a gradient
    pol.initial = {k: v.clone() for k, v in pol.model.state_dict().items()}
    return pol


def _one_step(policy, rolls, cfg, optimizer=None, reference=None, step=0):
    policy.model.load_state_dict(policy.initial)
    opt = optimizer or torch.optim.SGD(policy.trainable_parameters(), lr=0.5)
    stats = update.update(policy, opt, rolls, cfg, step, reference)
    return {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}, stats


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_micro_batches_of_1_and_3_step_like_the_whole_mini_batch(policy, agg):
    rolls = _rollouts(len(policy.tokenizer))
    runs = {m: _one_step(policy, rolls, _cfg(train={"micro_batch_size": m}, algo={"agg": agg}))
            for m in (None, 1, 3)}
    want, want_stats = runs[None]
    assert any(not torch.equal(p, policy.initial[n]) for n, p in want.items() if n in policy.initial)
    assert want_stats["train/clip_frac"] > 0  # the statistics below are not trivially 0 / 1
    for m in (1, 3):
        got, stats = runs[m]
        for name, p in want.items():
            assert torch.allclose(got[name], p, atol=1e-6, rtol=0), (m, name, (got[name] - p).abs().max())
        assert stats.keys() == want_stats.keys()
        for key, value in want_stats.items():  # clip_frac etc. token-weighted, the loss summed, ratio_max a max
            assert stats[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (m, key)


def test_micro_batching_with_recomputed_old_logprobs_and_adamw(policy):
    # 2 mini-batches: the second one's old log-probs are recomputed (per micro-batch, under no_grad) before any update
    rolls = _rollouts(len(policy.tokenizer), seed=1, empty=False)
    cfg = dict(train={"mini_batches": 2, "epochs": 2}, algo={"old_logprobs": "recompute"})
    results = []
    for m in (None, 2):
        c = _cfg(train={**cfg["train"], "micro_batch_size": m}, algo=cfg["algo"])
        policy.model.load_state_dict(policy.initial)
        opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-3, weight_decay=0.1)
        results.append(_one_step(policy, rolls, c, optimizer=opt))
    (a, sa), (b, sb) = results
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=0), name
    assert sa["train/logprob_abs_diff"] == pytest.approx(sb["train/logprob_abs_diff"], rel=1e-5)
    assert sa["train/clip_frac"] == pytest.approx(sb["train/clip_frac"], abs=1e-6)


def test_combine_stats_weights_by_tokens():
    parts = [({"clip_frac": 0.5, "loss": 1.0, "ratio_max": 1.2}, 2.0),
             ({"clip_frac": 0.0, "loss": -0.25, "ratio_max": 1.5}, 6.0),
             ({"clip_frac": 1.0, "loss": 0.0, "ratio_max": 9.0}, 0.0)]  # no tokens: weight 0, not in the max
    out = update.combine_stats(parts)
    assert out == {"clip_frac": pytest.approx(0.125), "loss": pytest.approx(0.75), "ratio_max": 1.5}


def test_kl_to_the_initial_policy_starts_at_zero_and_then_grows(policy):
    rolls = _rollouts(len(policy.tokenizer), seed=2, empty=False)
    reference = update.make_reference(policy, 0.1)
    assert reference.adapter_off == (policy.finetune != "full")
    policy.model.load_state_dict(policy.initial)
    if policy.finetune != "full":  # the reference is the BASE: start from the adapter's zero update
        with torch.no_grad():
            for name, p in policy.model.named_parameters():
                if "lora_B" in name:
                    p.zero_()
    else:
        reference = update.make_reference(policy, 0.1)  # a copy of the model as it is now
    start = {k: v.clone() for k, v in policy.model.state_dict().items()}
    policy.initial = start
    cfg = _cfg(train={"micro_batch_size": 3}, algo={"old_logprobs": "recompute", "kl_coef": 0.1})
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-2)
    first = update.update(policy, opt, rolls, cfg, 0, reference)
    assert first["train/kl_ref"] == pytest.approx(0.0, abs=1e-7)  # step 0: the policy IS the reference
    second = update.update(policy, opt, rolls, cfg, 1, reference)
    assert second["train/kl_ref"] > 1e-6
    if policy.finetune == "full":  # the frozen copy did not move with the policy
        for name, p in reference.model.named_parameters():
            assert torch.equal(p, start[name]) and not p.requires_grad


def test_kl_reference_copy_is_refused_for_large_full_finetunes(policy, monkeypatch):
    assert update.make_reference(policy, 0.0) is None
    if policy.finetune != "full":
        return
    monkeypatch.setattr(update, "REF_COPY_MAX_PARAMS", 1000)
    with pytest.raises(ValueError, match=r"REF_COPY_MAX_PARAMS.*lora or qlora"):
        update.make_reference(policy, 0.1)


def test_tis_weights_reach_the_update(policy):
    rolls = _rollouts(len(policy.tokenizer), seed=3, empty=False)
    plain, _ = _one_step(policy, rolls, _cfg(algo={"old_logprobs": "recompute"}))
    weighted, stats = _one_step(policy, rolls, _cfg(algo={"old_logprobs": "recompute", "tis_cap": 2.0}))
    assert 0 < stats["train/tis_weight_mean"] <= 2.0 and stats["train/tis_weight_max"] <= 2.0
    assert "train/logprob_abs_diff" in stats
    assert any(not torch.allclose(weighted[n], plain[n]) for n in plain)


def test_low_precision_trainable_parameters_are_refused(tiny_model_dir):
    pol = models.load_policy(str(tiny_model_dir), device="cpu")
    update.check_trainable_precision(pol)
    pol.model.to(torch.bfloat16)
    with pytest.raises(ValueError, match="not float32"):
        update.check_trainable_precision(pol)


def _pre_issue_10_update(policy, optimizer, rolls, cfg, step):
    """The trainer's update before issue 10 (one pass per mini-batch, full-vocabulary log-softmax), condensed."""
    import numpy as np
    from test_grpo import _reference_token_logprobs

    from studykit.engine import grpo
    from studykit.engine.rollout import pack

    model, t = policy.model, cfg.train.temperature
    order = np.random.default_rng(cfg.train.seed + step).permutation(len(rolls)).tolist()
    batches = [pack(rolls, list(map(int, c)), policy.tokenizer.pad_token_id)
               for c in np.array_split(order, min(cfg.train.mini_batches, len(order))) if len(c)]
    with torch.no_grad():
        model.eval()
        for b in batches[1:]:
            b["old_logprobs"], _ = _reference_token_logprobs(model, b["input_ids"], b["attention_mask"],
                                                             b["completion_mask"], t)
    model.train()
    for i, b in enumerate(batches):
        logp, ent = _reference_token_logprobs(model, b["input_ids"], b["attention_mask"], b["completion_mask"], t)
        if i == 0:
            b["old_logprobs"] = logp.detach()
        loss, _ = grpo.policy_loss(logp, b["old_logprobs"], b["advantages"], b["completion_mask"],
                                   agg=cfg.algo.agg, entropy=ent)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.train.grad_clip)
        optimizer.step()


def test_without_micro_batches_the_update_is_the_old_one_bit_for_bit(policy):
    # micro_batch_size None must keep the toy study's numbers: same parameters to the last bit (on one machine)
    rolls = _rollouts(len(policy.tokenizer), seed=4, empty=False)
    cfg = _cfg(train={"mini_batches": 2, "grad_clip": 1.0}, algo={"old_logprobs": "recompute"})
    policy.model.load_state_dict(policy.initial)
    _pre_issue_10_update(policy, torch.optim.AdamW(policy.trainable_parameters(), lr=1e-3), rolls, cfg, 5)
    want = {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}
    policy.model.load_state_dict(policy.initial)
    got, _ = _one_step(policy, rolls, cfg, optimizer=torch.optim.AdamW(policy.trainable_parameters(), lr=1e-3), step=5)
    for name, p in want.items():
        assert torch.equal(got[name], p), name


def test_old_and_reference_logprobs_run_per_micro_batch_under_no_grad(policy, monkeypatch):
    from studykit.engine import grpo

    rolls = _rollouts(len(policy.tokenizer), seed=5, empty=False)
    cfg = _cfg(train={"mini_batches": 2, "micro_batch_size": 3}, algo={"old_logprobs": "recompute", "kl_coef": 0.1})
    calls, real = [], grpo.token_logprobs

    def spy(model, input_ids, *args, **kwargs):
        calls.append((input_ids.shape[0], torch.is_grad_enabled()))
        return real(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(grpo, "token_logprobs", spy)
    policy.model.load_state_dict(policy.initial)
    batches = update.split(rolls, cfg, 0, policy.tokenizer.pad_token_id, policy.device)
    assert [[b["input_ids"].shape[0] for b in micros] for micros in batches] == [[3, 1], [3]]  # 4 + 3 sequences
    update.prepare(policy, batches, cfg, update.make_reference(policy, 0.1))
    # old log-probs for the second mini-batch's micro-batch, reference log-probs for all three; none with a graph
    assert calls == [(3, False), (3, False), (1, False), (3, False)]
    for micros in batches:
        for b in micros:
            assert b["ref_logprobs"].grad_fn is None and b["ref_logprobs"].shape == b["completion_mask"].shape
    assert "old_logprobs" not in batches[0][0] and batches[1][0]["old_logprobs"].grad_fn is None


def test_a_large_sampler_trainer_gap_warns_and_is_logged(policy):
    # Regression (issue 20, item 4): train/logprob_abs_diff was logged but never acted on
    rolls = _rollouts(len(policy.tokenizer), seed=6, empty=False)  # sampler log-probs ~ -2.5, far from the trainer's
    with pytest.warns(update.LogprobGapWarning, match=r"set algo\.tis_cap"):
        _, stats = _one_step(policy, rolls, _cfg(algo={"old_logprobs": "recompute"}))
    assert stats["train/logprob_abs_diff"] > update.LOGPROB_GAP_BOUND and stats["train/logprob_gap_exceeded"] == 1.0
    # the same samples with the trainer's own log-probs as the sampler's: no warning, 0 logged
    policy.model.load_state_dict(policy.initial)
    batch = update.split(rolls, _cfg(), 0, policy.tokenizer.pad_token_id, policy.device)[0][0]
    with torch.no_grad():
        policy.model.eval()
        logp, _ = update._logprobs(policy, policy.model, batch, _cfg())
    order = np.random.default_rng(0).permutation(len(rolls)).tolist()  # split's shuffle at seed 0, step 0
    for row, i in enumerate(order):
        rolls.sampler_logprobs[i] = logp[row][batch["completion_mask"][row] > 0].tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("error", update.LogprobGapWarning)
        _, stats = _one_step(policy, rolls, _cfg(algo={"old_logprobs": "recompute"}))
    assert stats["train/logprob_abs_diff"] < 1e-4 and stats["train/logprob_gap_exceeded"] == 0.0


def test_check_logprob_gap_names_the_active_correction():
    assert update.check_logprob_gap(0.05, 3, None) == 0.0
    with pytest.warns(update.LogprobGapWarning, match=r"step 3.*0\.5 nats.*tis_cap 2\.0"):
        assert update.check_logprob_gap(0.5, 3, 2.0) == 1.0


def test_with_lora_dropout_every_mini_batch_gets_dropout_free_old_logprobs(tiny_model_dir):
    # Regression (issue 20): the first mini-batch's old log-probs came from the training forward (dropout noise,
    # so they were not the policy's), the others from eval mode; now all come from the eval-mode forward
    torch.manual_seed(0)
    pol = models.load_policy(str(tiny_model_dir), finetune="lora", lora_rank=4, lora_alpha=8, lora_dropout=0.5,
                             device="cpu")
    assert update.has_dropout(pol.model)
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a non-zero adapter: its dropped inputs change the output
    rolls = _rollouts(len(pol.tokenizer), seed=7, empty=False)
    cfg = _cfg(train={"mini_batches": 2}, algo={"old_logprobs": "recompute"})
    batches = update.split(rolls, cfg, 0, pol.tokenizer.pad_token_id, pol.device)
    update.prepare(pol, batches, cfg)
    pol.model.train()
    opt = torch.optim.SGD(pol.trainable_parameters(), lr=0.0)  # no update: the policy stays the sampling one
    for i, micros in enumerate(batches):
        update.minibatch_step(pol, opt, micros, cfg, 0, first=i == 0)
    pol.model.eval()
    with torch.no_grad():
        for micros in batches:
            for b in micros:
                want, _ = update._logprobs(pol, pol.model, b, cfg)
                assert torch.equal(b["old_logprobs"], want)  # the first mini-batch's too
    no_dropout = models.load_policy(str(tiny_model_dir), finetune="lora", lora_rank=4, lora_alpha=8, device="cpu")
    assert not update.has_dropout(no_dropout.model)  # without dropout the first keeps its own forward's (bit for bit)
