"""HF sampler: shapes and flags, seeding, log-probs against a teacher-forced recomputation, greedy = argmax,
top-p renormalisation, eos stripping and truncation, bad input."""

from __future__ import annotations

import pytest
import torch

from studykit.policy.models import load_policy
from studykit.policy.sampling import Group, Sampler, make_sampler
from studykit.policy.sampling.hf import HFSampler

PROMPTS = ["Q 1 + 2 =", "Q 3 =", "<think> 4 5 6 7 8 9 sum"]  # different lengths: left padding is exercised


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    return load_policy(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def lora_policy(tiny_model_dir):
    pol = load_policy(str(tiny_model_dir), finetune="lora", lora_rank=4, device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return pol


def recompute(model, prompt_ids, token_ids, temperature):
    """Teacher-forced log_softmax(logits / T) of `token_ids` after `prompt_ids` (no padding) and the logits."""
    ids = torch.tensor([prompt_ids + token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    lp = torch.log_softmax(logits / (temperature or 1.0), dim=-1)
    return lp.gather(1, torch.tensor(token_ids)[:, None]).squeeze(1), logits


def test_shapes_and_flags(policy):
    sampler = make_sampler("hf", policy, max_batch=4)
    assert isinstance(sampler, Sampler)
    groups = sampler.generate(PROMPTS, n=5, max_new_tokens=6, seed=0)
    assert [g.prompt for g in groups] == PROMPTS
    eos = policy.tokenizer.eos_token_id
    for g in groups:
        assert isinstance(g, Group) and g.n == 5
        assert g.prompt_ids == policy.tokenizer(g.prompt)["input_ids"]
        assert len(g.token_ids) == len(g.logprobs) == len(g.truncated) == 5
        for ids, lps, trunc in zip(g.token_ids, g.logprobs, g.truncated):
            assert len(ids) == len(lps) and 1 <= len(ids) <= 6
            assert all(lp <= 0 for lp in lps)
            assert trunc == (ids[-1] != eos)
            assert eos not in ids[:-1]


def test_seed_reproducible_and_rng_untouched(policy):
    sampler = HFSampler(policy, max_batch=8)
    state = torch.get_rng_state()
    a = sampler.generate(PROMPTS, n=4, max_new_tokens=8, seed=123)
    assert torch.equal(state, torch.get_rng_state())
    b = sampler.generate(PROMPTS, n=4, max_new_tokens=8, seed=123)
    c = sampler.generate(PROMPTS, n=4, max_new_tokens=8, seed=124)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.logprobs for g in a] == [g.logprobs for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in c]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_match_teacher_forcing(policy, temperature):
    sampler = HFSampler(policy, max_batch=5)  # 3 prompts x 4 = 12 rows -> 3 chunks of mixed prompts
    groups = sampler.generate(PROMPTS, n=4, temperature=temperature, max_new_tokens=10, seed=7)
    for g in groups:
        for ids, lps in zip(g.token_ids, g.logprobs):
            ref, _ = recompute(policy.model, g.prompt_ids, ids, temperature)
            torch.testing.assert_close(torch.tensor(lps), ref, atol=1e-4, rtol=0)


def test_lora_policy_logprobs(lora_policy):
    groups = make_sampler("hf", lora_policy).generate(PROMPTS[:2], n=3, max_new_tokens=8, seed=3)
    for g in groups:
        for ids, lps in zip(g.token_ids, g.logprobs):
            ref, _ = recompute(lora_policy.model, g.prompt_ids, ids, 1.0)
            torch.testing.assert_close(torch.tensor(lps), ref, atol=1e-4, rtol=0)


def test_greedy_is_argmax(policy):
    groups = HFSampler(policy).generate(PROMPTS, n=2, temperature=0.0, max_new_tokens=10, seed=None)
    for g in groups:
        assert g.token_ids[0] == g.token_ids[1]
        ref, logits = recompute(policy.model, g.prompt_ids, g.token_ids[0], 0.0)
        assert g.token_ids[0] == logits.argmax(-1).tolist()
        torch.testing.assert_close(torch.tensor(g.logprobs[0]), ref, atol=1e-4, rtol=0)  # T=1 log-probs


def test_top_p_logprobs_are_renormalised(policy):
    top_p, temperature = 0.3, 1.0
    groups = HFSampler(policy).generate(PROMPTS[:1], n=6, top_p=top_p, max_new_tokens=6, seed=5)
    g = groups[0]
    for ids, lps in zip(g.token_ids, g.logprobs):
        _, logits = recompute(policy.model, g.prompt_ids, ids, temperature)
        probs = torch.softmax(logits, -1)
        sorted_p, order = probs.sort(-1, descending=True)
        keep_sorted = (sorted_p.cumsum(-1) - sorted_p) < top_p  # smallest set with mass >= top_p
        keep = torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)
        assert keep.gather(1, torch.tensor(ids)[:, None]).all()
        nucleus = torch.where(keep, probs, torch.zeros_like(probs))
        ref = (nucleus / nucleus.sum(-1, keepdim=True)).gather(1, torch.tensor(ids)[:, None]).squeeze(1).log()
        torch.testing.assert_close(torch.tensor(lps), ref, atol=1e-4, rtol=0)
        assert (torch.tensor(lps) > torch.log(probs.gather(1, torch.tensor(ids)[:, None]).squeeze(1)) - 1e-6).all()


def test_eos_stripping_and_truncation(policy):
    tok = policy.tokenizer
    eos, limit = tok.eos_token_id, 30
    groups = HFSampler(policy, max_batch=32).generate(PROMPTS[:2], n=32, max_new_tokens=limit, seed=11)
    ended = truncated = 0
    for g in groups:
        for ids, text, trunc in zip(g.token_ids, g.texts, g.truncated):
            assert eos not in ids[:-1]
            assert "<eos>" not in text and "<pad>" not in text
            assert text == tok.decode(ids, skip_special_tokens=True)
            if trunc:
                truncated += 1
                assert len(ids) == limit and ids[-1] != eos
            else:
                ended += 1
                assert ids[-1] == eos and len(ids) <= limit
    assert ended > 0 and truncated > 0  # the random tiny model produces both within 30 tokens


def test_completions_stop_at_the_context_length(policy):
    context = policy.model.config.max_position_embeddings  # 128 in the fixture
    groups = HFSampler(policy).generate(PROMPTS, n=4, temperature=0.0, max_new_tokens=500)
    for g in groups:
        cap = context - len(g.prompt_ids)
        for ids, trunc in zip(g.token_ids, g.truncated):
            assert len(ids) <= cap
            assert trunc == (len(ids) == cap and ids[-1] != policy.tokenizer.eos_token_id)
    assert any(t for g in groups for t in g.truncated)  # greedy loops on the untrained model
    with pytest.raises(ValueError, match="context"):
        HFSampler(policy).generate([" ".join(["Q"] * context)], n=1)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"n": 0}, "n"), ({"temperature": -1.0}, "temperature"), ({"top_p": 0.0}, "top_p"),
     ({"max_new_tokens": 0}, "max_new_tokens"), ({"prompts": "Q 1 ="}, "prompts")],
)
def test_bad_arguments_name_the_field(policy, kwargs, field):
    args = {"prompts": PROMPTS[:1], "n": 2, **kwargs}
    with pytest.raises(ValueError, match=field):
        HFSampler(policy).generate(**args)


def test_bad_kind_and_options(policy):
    with pytest.raises(ValueError, match="sampler kind"):
        make_sampler("sglang", policy)
    with pytest.raises(ValueError, match="max_batch"):
        make_sampler("hf", policy, max_batch=0)
