"""Power sampling (studykit.policy.sampling.power): the MH chains converge to the exact normalised p^alpha of an
enumerable autoregressive distribution (and not to p, nor to per-token sampling at temperature 1/alpha); the pure
acceptance rule; the hf model's teacher-forced scores; seeding, token counts and bad input of the sampler."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
import torch

from studykit.policy.models import load_policy
from studykit.policy.sampling import Sampler, make_sampler
from studykit.policy.sampling.power import (  # noqa: F401
    Chain, accept, block_ends, check_power_options, log_acceptance, run_chains,
)

EOS, VOCAB, PROMPT = 2, 3, [7]
FIRST, AFTER_0, AFTER_1 = (0.45, 0.45, 0.1), (0.4, 0.3, 0.3), (0.1, 0.8, 0.1)


def _table(prefix: tuple[int, ...]) -> np.ndarray:
    """p(next | response so far): after 0 the futures are many and weak, after 1 one future is strong, so p^alpha
    prefers a first token that per-token low-temperature sampling does not."""
    if not prefix:
        return np.array(FIRST)
    return np.array(AFTER_0) if prefix[0] == 0 else np.array(AFTER_1)


@functools.lru_cache(maxsize=None)
def _tempered(prefix: tuple[int, ...], temperature: float) -> np.ndarray:
    logits = np.log(_table(prefix)) / temperature
    return np.exp(logits - np.logaddexp.reduce(logits))


class TableModel:
    """A hand-built `PowerModel` whose sequence law can be enumerated; rows are PROMPT + response ids."""

    eos = (EOS,)

    def __init__(self) -> None:
        self.generated = 0

    def sync(self, policy):
        pass

    def budget(self, prompt_ids, max_new_tokens):
        return max_new_tokens

    def propose(self, rows, caps, temperature, alpha, seed):
        new = self.extend(rows, caps, temperature / alpha, seed)
        return [(s, lp, lq) for s, (lp, lq) in zip(new, self.score([r + s for r, s in zip(rows, new)],
                                                                 [len(s) for s in new], temperature, alpha))]

    def extend(self, rows, caps, temperature, seed):
        rng = np.random.default_rng(seed)
        out = []
        for row, cap in zip(rows, caps):
            resp, new = tuple(row[len(PROMPT):]), []
            while len(new) < cap:
                tok = int(np.searchsorted(np.cumsum(_tempered(resp + tuple(new), temperature)), rng.random()))
                new.append(min(tok, VOCAB - 1))
                if tok == EOS:
                    break
            out.append(new)
        self.generated += sum(map(len, out))
        return out

    def score(self, rows, lengths, temperature, alpha):
        out = []
        for row, n in zip(rows, lengths):
            resp = row[len(PROMPT):]
            lp = [math.log(_tempered(tuple(resp[:j]), temperature)[resp[j]]) for j in range(len(resp) - n, len(resp))]
            lq = [math.log(_tempered(tuple(resp[:j]), temperature / alpha)[resp[j]])
                  for j in range(len(resp) - n, len(resp))]
            out.append((np.array(lp), np.array(lq)))
        return out


def _space(length: int) -> list[tuple[int, ...]]:
    """Every response of at most `length` tokens that ends at eos or at `length`."""
    seqs = []
    for n in range(1, length + 1):
        for seq in itertools.product(range(VOCAB), repeat=n):
            if EOS not in seq[:-1] and (seq[-1] == EOS or n == length):
                seqs.append(seq)
    return seqs


def _law(seqs, temperature: float, power: float = 1.0) -> np.ndarray:
    """Normalised prod_t p_temperature(x_t | x_<t) ** power over `seqs`."""
    w = np.array([math.prod(_tempered(s[:j], temperature)[s[j]] for j in range(len(s))) ** power for s in seqs])
    return w / w.sum()


def _tv(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(np.abs(a - b).sum())


def _suffixes(prefix: tuple[int, ...], end: int, temperature: float) -> list[tuple[tuple[int, ...], float]]:
    """Every continuation of `prefix` to eos or length `end`, with its probability at `temperature`."""
    if len(prefix) == end or (prefix and prefix[-1] == EOS):
        return [((), 1.0)]
    probs = _tempered(prefix, temperature)
    return [((t, *rest), probs[t] * q) for t in range(VOCAB) for rest, q in _suffixes(prefix + (t,), end, temperature)]


def _scores(seq: tuple[int, ...], start: int, temperature: float) -> list[float]:
    return [math.log(_tempered(seq[:j], temperature)[seq[j]]) for j in range(start, len(seq))]


def _kernel(length: int, alpha: float, ratio=log_acceptance) -> tuple[list, np.ndarray]:
    """The exact transition matrix of one MH step over the responses of `length` (position uniform, suffix from
    the proposal, accepted with probability min(1, exp(ratio)), the rule `accept` applies to a uniform draw)."""
    seqs = _space(length)
    index, kernel = {s: i for i, s in enumerate(seqs)}, np.zeros((len(seqs), len(seqs)))
    for x in seqs:
        for i in range(len(x)):
            for suffix, q in _suffixes(x[:i], length, 1 / alpha):
                y = x[:i] + suffix
                a = math.exp(min(0.0, ratio(alpha, _scores(y, i, 1.0), _scores(y, i, 1 / alpha), _scores(x, i, 1.0),
                                            _scores(x, i, 1 / alpha), len(x), len(y))))
                kernel[index[x], index[y]] += q * a / len(x)
                kernel[index[x], index[x]] += q * (1 - a) / len(x)
    return seqs, kernel


def _algorithm_law(length: int, alpha: float, mh_steps: int) -> np.ndarray:
    """The exact law of `run_chains` with one block per token: extend, `mh_steps` kernel steps, freeze at eos."""
    live, done = {(): 1.0}, {}
    for k in range(1, length + 1):
        seqs, kernel = _kernel(k, alpha)
        v = np.zeros(len(seqs))
        for x, w in live.items():
            for suffix, q in _suffixes(x, k, 1 / alpha):
                v[seqs.index(x + suffix)] += w * q
        v = v @ np.linalg.matrix_power(kernel, mh_steps)
        live = {s: v[i] for i, s in enumerate(seqs) if s[-1] != EOS}
        done |= {s: done.get(s, 0.0) + v[i] for i, s in enumerate(seqs) if s[-1] == EOS}
    return np.array([done.get(s, 0.0) + live.get(s, 0.0) for s in _space(length)])


def _empirical(chains: list[Chain], length: int) -> np.ndarray:
    index = {s: i for i, s in enumerate(_space(length))}
    return np.bincount([index[tuple(c.ids)] for c in chains], minlength=len(index)) / len(chains)


def test_p_alpha_is_stationary_under_the_acceptance_rule():
    """Exact: p^alpha times the MH kernel of `log_acceptance` is p^alpha, responses of different lengths included.
    Without the position-choice correction (as the authors' code) it is not, so this check can fail."""
    for length in (1, 2, 3):
        seqs, kernel = _kernel(length, 4.0)
        target = _law(seqs, 1.0, 4.0)
        assert np.allclose(kernel.sum(1), 1.0) and np.abs(target @ kernel - target).max() < 1e-12

    def uncorrected(alpha, lp_new, lq_new, lp_old, lq_old, n_old, n_new):
        return log_acceptance(alpha, lp_new, lq_new, lp_old, lq_old, 1, 1)

    seqs, kernel = _kernel(3, 4.0, uncorrected)
    target = _law(seqs, 1.0, 4.0)
    assert np.abs(target @ kernel - target).max() > 1e-3


def test_chains_converge_to_exact_p_alpha():
    """4000 chains of `run_chains` (one block, 30 MH steps, alpha 4) over the 15 responses of length <= 3 against
    the exact normalised p^alpha. Tolerance: TV 0.04 = the chain's exact bias after 30 steps (0.005, by the kernel)
    plus the sampling error (mean TV about 0.015 at 4000 draws, simulated here); p^alpha is more than 0.4 away from
    p and from per-token sampling at temperature 1/alpha, so a sampler of either fails."""
    alpha, length, n = 4.0, 3, 4000
    seqs = _space(length)
    target, plain, low_temp = _law(seqs, 1.0, alpha), _law(seqs, 1.0), _law(seqs, 1.0 / alpha)
    assert _tv(target, plain) > 0.4 and _tv(target, low_temp) > 0.4
    assert np.mean([_tv(np.random.default_rng(i).multinomial(n, target) / n, target) for i in range(50)]) < 0.02
    chains, model = [Chain(list(PROMPT), length) for _ in range(n)], TableModel()
    stats = run_chains(model, chains, alpha=alpha, blocks=1, mh_steps=30, temperature=1.0, seed=0)
    empirical = _empirical(chains, length)
    assert _tv(empirical, target) < 0.04
    assert _tv(empirical, plain) > 0.3 and _tv(empirical, low_temp) > 0.3
    assert stats.tokens_generated == model.generated and 0 < stats.accepted < stats.proposals == n * 30
    for c in chains[:200]:  # the chain keeps its response's scores, as a fresh scoring gives them
        lp, lq = model.score([PROMPT + c.ids], [len(c.ids)], 1.0, alpha)[0]
        assert np.allclose(c.logp, lp) and np.allclose(c.logq, lq)


@pytest.mark.parametrize("mh_steps", [0, 8])
def test_blocks_follow_the_algorithms_exact_law(mh_steps):
    """Three one-token blocks: a chain that ends at eos in an early block is final (as the authors' code), so the
    law is close to but not p^alpha; it is the kernel recursion's exact law (0 MH steps: per-token sampling at
    temperature 1/alpha)."""
    n = 3000
    chains = [Chain(list(PROMPT), 3) for _ in range(n)]
    run_chains(TableModel(), chains, alpha=4.0, blocks=3, mh_steps=mh_steps, temperature=1.0, seed=1)
    exact = _algorithm_law(3, 4.0, mh_steps)
    if mh_steps == 0:
        assert np.allclose(exact, _law(_space(3), 0.25))
    assert _tv(_empirical(chains, 3), exact) < 0.04


def test_log_acceptance_by_hand():
    got = log_acceptance(4.0, [-0.1, -0.2], [-0.05, -0.1], [-1.0], [-0.5], n_old=3, n_new=4)
    assert got == pytest.approx(4.0 * (-0.3 + 1.0) + (-0.5) - (-0.15) + math.log(3) - math.log(4))
    with pytest.raises(ValueError, match="n_old"):
        log_acceptance(4.0, [], [], [], [], 0, 1)
    with pytest.raises(ValueError, match="NaN"):
        log_acceptance(4.0, [math.nan], [0.0], [0.0], [0.0], 1, 1)


def test_accept_rule():
    assert accept(0.0, 0.999) and accept(5.0, 0.999)
    assert accept(math.log(0.3), 0.29) and not accept(math.log(0.3), 0.31)
    assert not accept(-math.inf, 0.0)


def test_block_ends_and_options():
    assert block_ends(16, 16) == list(range(1, 17))
    assert block_ends(12, 5) == [3, 5, 8, 10, 12]
    assert block_ends(3, 5) == [1, 2, 2, 3, 3]
    for bad, field in (((0.5, 16, 10), "alpha"), ((4, 0, 10), "blocks"), ((4, 16, -1), "mh_steps"),
                       ((4, 2.0, 10), "blocks"), ((True, 16, 10), "alpha")):
        with pytest.raises(ValueError, match=field):
            check_power_options(*bad)


# ---------------------------------------------------------------------------------------------- the hf path


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    return load_policy(str(tiny_model_dir), device="cpu")


def test_hf_power_sampler_is_seeded_and_scored(policy):
    sampler = make_sampler("power", policy, alpha=2.0, blocks=3, mh_steps=2, max_batch=5)
    assert isinstance(sampler, Sampler)
    prompts = ["Q 1 + 2 =", "<think> 4 5 6 7 sum"]
    a = sampler.generate(prompts, n=4, max_new_tokens=7, seed=5)
    b = sampler.generate(prompts, n=4, max_new_tokens=7, seed=5)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    stats = sampler.last_stats
    assert stats["answers"] == 8 and 0 < stats["proposals"] <= 8 * 3 * 2  # a chain ended at eos stops
    assert stats["tokens_generated"] >= sum(len(t) for g in a for t in g.token_ids)
    eos = policy.tokenizer.eos_token_id
    for g in a:
        for ids, lps, trunc in zip(g.token_ids, g.logprobs, g.truncated):
            assert 1 <= len(ids) <= 7 and trunc == (ids[-1] != eos) and eos not in ids[:-1]
            full = torch.tensor([g.prompt_ids + ids])
            with torch.no_grad():
                logits = policy.model(input_ids=full).logits[0, len(g.prompt_ids) - 1:-1].float()
            want = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids)[:, None]).squeeze(1)
            assert np.allclose(lps, want.numpy(), atol=1e-4)  # Group.logprobs: the base model at temperature 1


def test_hf_score_matches_teacher_forcing(policy):
    from studykit.policy.sampling.hf import HFSampler
    from studykit.policy.sampling.power_hf import HFPowerModel

    model = HFPowerModel(HFSampler(policy, max_batch=2))
    rows = [[1, 14, 16, 15, 17], [1, 5, 6], [1, 9, 9, 9, 9, 9, 2]]
    got = model.score(rows, [3, 1, 4], temperature=0.7, alpha=3.0)
    for row, n, (lp, lq) in zip(rows, [3, 1, 4], got):
        with torch.no_grad():
            logits = policy.model(input_ids=torch.tensor([row])).logits[0, :-1].float()
        tgt = torch.tensor(row[1:])[:, None]
        want_p = torch.log_softmax(logits / 0.7, -1).gather(1, tgt).squeeze(1)[-n:]
        want_q = torch.log_softmax(logits * 3.0 / 0.7, -1).gather(1, tgt).squeeze(1)[-n:]
        assert np.allclose(lp, want_p.numpy(), atol=1e-4) and np.allclose(lq, want_q.numpy(), atol=1e-4)


def test_power_sampler_refuses_what_it_cannot_do(policy):
    with pytest.raises(ValueError, match="base: expected 'hf', 'vllm' or a sampler object"):
        make_sampler("power", policy, base="sglang")
    with pytest.raises(ValueError, match="base: expected an HFSampler or a VLLMSampler, got object"):
        make_sampler("power", policy, base=object())
    from studykit.policy.sampling.hf import HFSampler

    with pytest.raises(ValueError, match=r"base: options \['max_batch'\] given with a base sampler object"):
        make_sampler("power", policy, base=HFSampler(policy), max_batch=2)
    sampler = make_sampler("power", policy, blocks=2, mh_steps=1)
    with pytest.raises(ValueError, match="top_p"):
        sampler.generate(["Q 1 ="], n=1, top_p=0.9, max_new_tokens=4)
    with pytest.raises(ValueError, match="temperature"):
        sampler.generate(["Q 1 ="], n=1, temperature=0, max_new_tokens=4)
    with pytest.raises(ValueError, match="alpha"):
        make_sampler("power", policy, alpha=0)


def test_hf_score_splits_passes_by_logit_budget(policy, monkeypatch):
    from studykit.policy.sampling import power_hf
    from studykit.policy.sampling.hf import HFSampler

    rows = [[1, 14, 16, 15, 17], [1, 5, 6], [1, 9, 9, 9, 9, 9, 2]]
    model = power_hf.HFPowerModel(HFSampler(policy, max_batch=8))
    whole = model.score(rows, [3, 1, 4], temperature=1.0, alpha=4.0)
    monkeypatch.setattr(power_hf, "LOGIT_ELEMENTS", 1)  # one row per pass
    calls = []
    real = model._score_chunk
    monkeypatch.setattr(model, "_score_chunk", lambda r, *a: calls.append(len(r)) or real(r, *a))
    split = model.score(rows, [3, 1, 4], temperature=1.0, alpha=4.0)
    assert calls == [1, 1, 1]
    assert all(np.allclose(a[0], b[0], atol=1e-5) and np.allclose(a[1], b[1], atol=1e-5) for a, b in zip(whole, split))
