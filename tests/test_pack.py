"""rollout.pack left-pads prompt+completion (issue 20, item 7b): the per-token log-probs and the loss are those of
the former right-padded layout, while the logits window is only as wide as the longest completion."""

from __future__ import annotations

import torch

from studykit.engine import grpo
from studykit.policy import models
from studykit.engine.rollout import Rollouts, pack


def _right_padded(rollouts: Rollouts, index: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """The layout `pack` produced before issue 20: prompt+completion from column 0, padding on the right."""
    seqs = [rollouts.prompt_ids[i] + rollouts.token_ids[i] for i in index]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    comp = torch.zeros((len(seqs), width), dtype=torch.float32)
    for row, i in enumerate(index):
        p, c = len(rollouts.prompt_ids[i]), len(rollouts.token_ids[i])
        ids[row, : p + c] = torch.tensor(seqs[row])
        attn[row, : p + c] = 1
        comp[row, p: p + c] = 1
    return {"input_ids": ids, "attention_mask": attn, "completion_mask": comp}


def _uneven(vocab: int) -> Rollouts:
    """Prompts of very different lengths (2..30 tokens), completions of 0..6 tokens."""
    g = torch.Generator().manual_seed(7)
    out = Rollouts()
    for p, c in [(30, 3), (2, 6), (17, 0), (9, 5), (4, 1)]:
        out.prompt_ids.append([1] + torch.randint(4, vocab, (p - 1,), generator=g).tolist())
        out.token_ids.append(torch.randint(4, vocab, (c,), generator=g).tolist())
        out.sampler_logprobs.append([-1.0 - 0.1 * j for j in range(c)])
        out.advantages.append(float(torch.randn(1, generator=g)))
    return out


def _per_row(logp: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    return [row[m > 0] for row, m in zip(logp, mask)]


def test_left_padding_keeps_every_token_logprob_and_the_loss(tiny_model_dir):
    torch.manual_seed(0)
    policy = models.load_policy(str(tiny_model_dir), device="cpu")
    rolls = _uneven(len(policy.tokenizer))
    index, pad = list(range(len(rolls))), policy.tokenizer.pad_token_id
    new, old = pack(rolls, index, pad), _right_padded(rolls, index, pad)
    assert torch.equal(new["input_ids"][:, -1], torch.tensor([s[-1] for s in (
        rolls.prompt_ids[i] + rolls.token_ids[i] for i in index)]))  # every row ends in the last column
    for row, i in enumerate(index):  # the sampler's log-probs sit under the completion tokens
        got = new["sampler_logprobs"][row][new["completion_mask"][row] > 0]
        assert torch.equal(got, torch.tensor(rolls.sampler_logprobs[i], dtype=torch.float32))
    kept = []
    real = policy.model.forward

    def spy(*args, **kwargs):
        kept.append(kwargs.get("logits_to_keep"))
        return real(*args, **kwargs)

    policy.model.forward = spy
    with torch.no_grad():
        lp_new, _ = grpo.token_logprobs(policy.model, new["input_ids"], new["attention_mask"], new["completion_mask"])
        lp_old, _ = grpo.token_logprobs(policy.model, old["input_ids"], old["attention_mask"], old["completion_mask"])
    # logits for the longest completion (6) + 1 instead of from the shortest prompt (2) to the longest row (33)
    assert kept == [6 + 1, 33 - 2 + 1]
    for a, b in zip(_per_row(lp_new, new["completion_mask"]), _per_row(lp_old, old["completion_mask"])):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=0), (a, b)
    adv = torch.tensor(rolls.advantages)
    for agg in ("token-mean", "seq-mean-token-sum"):
        old_lp = lp_new.detach() - 0.1  # any old log-probs, the same per token in both layouts
        old_lp_right = torch.zeros_like(lp_old)
        old_lp_right[old["completion_mask"] > 0] = old_lp[new["completion_mask"] > 0]
        a, _ = grpo.policy_loss(lp_new, old_lp, adv, new["completion_mask"], agg=agg)
        b, _ = grpo.policy_loss(lp_old, old_lp_right, adv, old["completion_mask"], agg=agg)
        assert torch.allclose(a, b, atol=1e-6), (agg, a, b)
